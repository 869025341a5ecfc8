import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * oauth2-introspection through the real gateway (2 workers, each with its own result
 * cache) against a real RFC 7662 endpoint on 127.0.0.1 that checks the client
 * credentials and counts calls per token. Requests go on fresh connections so both
 * workers see traffic; "cached" therefore means at most one call per worker.
 */

const CLIENT_ID = 'gatehouse'
const CLIENT_SECRET = 'introspection-secret:with/odd+chars'

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

describe('oauth2-introspection through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let idp: http.Server
  let port: number
  const calls = new Map<string, number>()
  let badCredentials = 0
  const future = () => Math.floor(Date.now() / 1000) + 600
  const tokens: Record<string, object> = {}
  const dir = tempDir('gh-introspect-')

  before(async () => {
    const expected = `Basic ${Buffer.from(`${CLIENT_ID}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`
    idp = http.createServer((req, res) => {
      let raw = ''
      req.on('data', (c: Buffer) => { raw += c.toString() })
      req.on('end', () => {
        const form = new URLSearchParams(raw)
        const token = form.get('token') ?? ''
        calls.set(token, (calls.get(token) ?? 0) + 1)
        if (req.headers.authorization !== expected) { badCredentials++; res.writeHead(401).end('{"error":"invalid_client"}'); return }
        const answer = JSON.stringify(tokens[token] ?? { active: false })
        const send = () => res.writeHead(200, { 'content-type': 'application/json' }).end(answer)
        if (req.url === '/slow') setTimeout(send, 1500).unref()
        else send()
      })
    })
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r))
    const idpOrigin = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`

    up = await startUpstream()
    port = await freePort()
    const closed = await freePort()
    const api = (name: string, config: string): string => apiYaml(name, port, `/${name}`, `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: oauth2-introspection }
      config:
        clientId: ${CLIENT_ID}
        clientSecret: "\${env:GH_TEST_INTROSPECTION_SECRET}"
${config.trim().split('\n').map((l) => `        ${l.trim()}`).join('\n')}
`)
    writeConfig(dir, {
      'api.yaml': [
        api('i', `
          introspectionUrl: ${idpOrigin}/introspect
          forwardClaims: { sub: x-user, scope: x-scope }`),
        api('s', `
          introspectionUrl: ${idpOrigin}/introspect
          requiredScopes: [orders:write]`),
        api('c', `
          introspectionUrl: ${idpOrigin}/introspect
          tokenSource: { cookie: session }`),
        api('slow', `
          introspectionUrl: ${idpOrigin}/slow
          timeoutMs: 300`),
        api('down', `
          introspectionUrl: http://127.0.0.1:${closed}/introspect
          timeoutMs: 500`),
        serviceYaml('s', [up.origin]),
        hostYaml(),
      ].join('---\n'),
    })
    gw = await startGateway(dir, { env: { GH_TEST_INTROSPECTION_SECRET: CLIENT_SECRET } })
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (idp !== undefined) { idp.closeAllConnections(); await new Promise((r) => idp.close(r)) }
  })

  function get(p: string, headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => { body += c })
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      })
      req.on('error', reject)
      req.end()
    })
  }
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
  const codeOf = (r: Reply) => (JSON.parse(r.body) as { code: string }).code

  test('an active token passes with its claims forwarded as headers and the token stripped', async () => {
    tokens['opaque-alice'] = { active: true, sub: 'alice', scope: 'orders:read', client_id: 'web', exp: future() }
    const r = await get('/i/orders', { ...bearer('opaque-alice'), 'x-user': 'spoofed' })
    assert.equal(r.status, 200, r.body)
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers
    assert.equal(h['x-user'], 'alice')
    assert.equal(h['x-scope'], 'orders:read')
    assert.equal(h.authorization, undefined)
    assert.equal(badCredentials, 0, 'the client credentials were accepted')
  })

  test('an inactive token is 401 invalid_token and a missing one 401 with a realm challenge', async () => {
    const r = await get('/i/orders', bearer('opaque-revoked'))
    assert.equal(r.status, 401)
    assert.equal(codeOf(r), 'GH_ERR_AUTH_INVALID')
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="i", error="invalid_token", error_description="token is not active"')
    const m = await get('/i/orders')
    assert.equal(m.status, 401)
    assert.equal(codeOf(m), 'GH_ERR_AUTH_MISSING')
    assert.equal(m.headers['www-authenticate'], 'Bearer realm="i"')
  })

  test('a token without the required scope is 403; with it, 200', async () => {
    tokens['opaque-reader'] = { active: true, sub: 'r', scope: 'orders:read', exp: future() }
    tokens['opaque-writer'] = { active: true, sub: 'w', scope: 'orders:read orders:write', exp: future() }
    const r = await get('/s/orders', bearer('opaque-reader'))
    assert.equal(r.status, 403)
    assert.equal(codeOf(r), 'GH_ERR_AUTH_FORBIDDEN')
    assert.match(String(r.headers['www-authenticate']), /error="insufficient_scope".*scope="orders:write"$/)
    assert.equal((await get('/s/orders', bearer('opaque-writer'))).status, 200)
  })

  test('a repeated token is not introspected again: at most one call per worker', async () => {
    tokens['opaque-repeat'] = { active: true, sub: 'rep', exp: future() }
    const rs = await Promise.all(Array.from({ length: 20 }, () => get('/i/x', bearer('opaque-repeat'))))
    for (let i = 0; i < 10; i++) rs.push(await get('/i/x', bearer('opaque-repeat')))
    assert.ok(rs.every((r) => r.status === 200))
    const n = calls.get('opaque-repeat') ?? 0
    assert.ok(n >= 1 && n <= 2, `30 requests, ${n} introspection calls`)
    for (let i = 0; i < 10; i++) assert.equal((await get('/i/x', bearer('opaque-nope'))).status, 401)
    assert.ok((calls.get('opaque-nope') ?? 0) <= 2, 'inactive answers are cached too')
  })

  test('a token in a cookie is read and the cookie removed upstream, the others kept', async () => {
    tokens['opaque-cookie'] = { active: true, username: 'carol', exp: future() }
    const r = await get('/c/x', { cookie: 'theme=dark; session=opaque-cookie; lang=en' })
    assert.equal(r.status, 200, r.body)
    assert.equal((JSON.parse(r.body) as { headers: Record<string, string> }).headers.cookie, 'theme=dark; lang=en')
  })

  test('an IdP that is down or too slow gives 503 GH_ERR_AUTH_UNAVAILABLE, never 401', async () => {
    tokens['opaque-slow'] = { active: true, sub: 's', exp: future() }
    for (const p of ['/down/x', '/slow/x']) {
      const t0 = Date.now()
      const r = await get(p, bearer('opaque-slow'))
      assert.equal(r.status, 503, p)
      assert.equal(codeOf(r), 'GH_ERR_AUTH_UNAVAILABLE')
      assert.ok(Date.now() - t0 < 1400, `${p} answered within the deadline`)
    }
  })
})
