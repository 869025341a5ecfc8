import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { apiYaml, catchAllConfig, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * The first three policies through the real gateway: header-injection, header-removal and
 * cors, with policy order, PolicyBinding rules and both phases.
 */
describe('policies through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number

  before(async () => {
    up = await startUpstream((req, res, body) => {
      const text = JSON.stringify({ url: req.url, headers: req.headers, bodyBytes: body.length })
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        'x-internal-trace': 'secret-node-7',
        'server': 'upstream/1.0',
        'access-control-allow-origin': 'https://evil.example',
        'vary': 'Accept-Encoding',
      })
      res.end(text)
    })
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'api.yaml': apiYaml('p', port, '/p', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config:
        requestHeaders: { x-tenant: acme, x-overwritten: gateway }
        responseHeaders: { x-frame-options: DENY }
    - policyRef: { name: header-removal }
      config: { requestHeaders: [x-debug, Cookie], responseHeaders: [X-Internal-Trace, server] }
    - policyRef: { name: cors }
      config:
        allowOrigins: ["https://app.example"]
        allowOriginPatterns: ["https://[a-z]+\\\\.preview\\\\.example"]
        allowMethods: [GET, POST]
        allowHeaders: [content-type, authorization]
        exposeHeaders: [x-request-id]
        allowCredentials: true
        maxAgeSeconds: 600
`) + '---\n' + `apiVersion: gatehouse/v1
kind: PolicyBinding
metadata: { name: admin-only }
spec:
  targetRef: { kind: ApiInstance, name: p }
  policyRef: { name: header-injection }
  order: 5
  rules: [{ path: /admin(/.*)? }]
  config: { requestHeaders: { x-zone: admin } }
` + '---\n' + serviceYaml('s', [up.origin]) + '---\n' + hostYaml(),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  async function call(path: string, headers: Record<string, string> = {}, method = 'GET') {
    const r = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', headers })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text }
  }

  test('header-injection sets request headers upstream, replacing a client value, and response headers downstream', async () => {
    const r = await call('/p/x', { 'x-overwritten': 'client' })
    assert.equal(r.status, 200)
    const h = (JSON.parse(r.text) as { headers: Record<string, string> }).headers
    assert.equal(h['x-tenant'], 'acme')
    assert.equal(h['x-overwritten'], 'gateway')
    assert.equal(r.headers['x-frame-options'], 'DENY')
  })

  test('header-removal drops request headers case-insensitively and strips response headers', async () => {
    const r = await call('/p/x', { 'x-debug': '1', cookie: 'session=abc', 'x-other': 'kept' })
    const h = (JSON.parse(r.text) as { headers: Record<string, string> }).headers
    assert.equal(h['x-debug'], undefined)
    assert.equal(h.cookie, undefined)
    assert.equal(h['x-other'], 'kept')
    assert.equal(r.headers['x-internal-trace'], undefined)
    assert.equal(r.headers.server, undefined)
  })

  test('a PolicyBinding with rules applies only to the requests its rules match', async () => {
    const admin = await call('/p/admin/users')
    assert.equal((JSON.parse(admin.text) as { headers: Record<string, string> }).headers['x-zone'], 'admin')
    const other = await call('/p/users')
    assert.equal((JSON.parse(other.text) as { headers: Record<string, string> }).headers['x-zone'], undefined)
  })

  test('cors answers an allowed preflight itself with 204 and never forwards it', async () => {
    const n = up.requests.length
    const r = await call('/p/items', {
      origin: 'https://app.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    }, 'OPTIONS')
    assert.equal(r.status, 204)
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example')
    assert.equal(r.headers['access-control-allow-methods'], 'GET, POST')
    assert.equal(r.headers['access-control-allow-headers'], 'content-type, authorization')
    assert.equal(r.headers['access-control-allow-credentials'], 'true')
    assert.equal(r.headers['access-control-max-age'], '600')
    assert.equal(up.requests.length, n, 'a preflight never reaches the upstream')
  })

  test('cors gives a preflight from an unknown origin no CORS headers', async () => {
    const r = await call('/p/items', { origin: 'https://evil.example', 'access-control-request-method': 'POST' }, 'OPTIONS')
    assert.equal(r.status, 204)
    assert.equal(r.headers['access-control-allow-origin'], undefined)
  })

  test('cors adds Allow-Origin, credentials, expose headers and Vary to an allowed simple request, replacing the upstream value', async () => {
    const r = await call('/p/items', { origin: 'https://app.example' })
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example')
    assert.equal(r.headers['access-control-allow-credentials'], 'true')
    assert.equal(r.headers['access-control-expose-headers'], 'x-request-id')
    assert.equal(r.headers.vary, 'Accept-Encoding, Origin')
  })

  test('cors origin patterns are anchored regexes', async () => {
    const ok = await call('/p/items', { origin: 'https://pr.preview.example' })
    assert.equal(ok.headers['access-control-allow-origin'], 'https://pr.preview.example')
    const bad = await call('/p/items', { origin: 'https://pr.preview.example.evil.com' })
    assert.equal(bad.headers['access-control-allow-origin'], undefined)
  })

  test('cors adds no CORS headers to a request without Origin', async () => {
    const r = await call('/p/items')
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-credentials'], undefined)
  })
})

describe('cors with rejectUnknownOrigins', () => {
  let gw: Gateway
  let up: Upstream
  let port: number

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'api.yaml': catchAllConfig(port, '/c', [up.origin], { api: `  policies:
    - policyRef: { name: cors }
      config: { allowOrigins: ["https://only.example"], rejectUnknownOrigins: true }
` }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('a request from a disallowed origin is rejected with 403 problem+json before reaching the upstream', async () => {
    const n = up.requests.length
    const r = await request(`http://127.0.0.1:${port}/c/x`, { headers: { origin: 'https://other.example' } })
    const body = JSON.parse(await r.body.text()) as { code: string; status: number }
    assert.equal(r.statusCode, 403)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal(body.code, 'GH_ERR_POLICY_CORS_FORBIDDEN')
    assert.equal(up.requests.length, n)
  })

  test('a request from the allowed origin passes with its CORS headers', async () => {
    const r = await request(`http://127.0.0.1:${port}/c/x`, { headers: { origin: 'https://only.example' } })
    await r.body.text()
    assert.equal(r.statusCode, 200)
    assert.equal(r.headers['access-control-allow-origin'], 'https://only.example')
    assert.equal(r.headers.vary, 'Origin')
  })
})
