import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, request } from 'undici'
import { apiYaml, catchAllConfig, freePort, hostYaml, rawRequest, serviceYaml, startGateway, startUpstream, statusOf, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

describe('routing and forwarding through a real gateway', () => {
  let gw: Gateway
  let a: Upstream
  let b: Upstream
  let c: Upstream
  let port: number
  const agent = new Agent({ connections: 64 })

  before(async () => {
    a = await startUpstream()
    b = await startUpstream()
    c = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'api.yaml': apiYaml('shop', port, '/api', `    by-host:
      service: svc-c
      routes: [{ rules: [{ path: /v1(/.*), host: admin\\.example\\.com }] }]
    by-header:
      service: svc-c
      routes: [{ rules: [{ path: /v1(/.*), headers: { x-canary: "yes|true" } }] }]
    v1:
      service: svc-a
      routes: [{ rules: [{ path: /v1(/.*), methods: GET|POST }], weight: 90 }]
    v2:
      service: svc-b
      routes: [{ rules: [{ path: /v1(/.*), methods: GET|POST }], weight: 10 }]
    delete-only:
      service: svc-c
      routes: [{ rules: [{ path: "/v1/items/[0-9]+", methods: DELETE }] }]
    nocapture:
      service: svc-c
      routes: [{ rules: [{ path: /plain/.* }] }]
    prefixed:
      address: ${c.origin}/base
      routes: [{ rules: [{ path: /pre(/.*) }] }]
`) + '---\n' + apiYaml('apix', port, '/apix', `    all:
      service: svc-c
      routes: [{ rules: [{ path: /.* }] }]
`, '  preserveHost: true\n') + '---\n' + serviceYaml('svc-a', [a.origin]) + '---\n' + serviceYaml('svc-b', [b.origin]) +
        '---\n' + serviceYaml('svc-c', [c.origin]) + '---\n' + hostYaml(),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await agent.close()
    await Promise.all([a?.close(), b?.close(), c?.close()])
  })

  async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
    const r = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', headers, dispatcher: agent })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text, json: () => JSON.parse(text) as { url: string; method: string; headers: Record<string, string> } }
  }

  test('the base path is removed and the capture group becomes the upstream path, query unchanged', async () => {
    const r = await get('/api/v1/items/7?q=1&x=%20y', { 'x-canary': 'no' })
    assert.equal(r.status, 200)
    assert.equal(r.json().url, '/items/7?q=1&x=%20y')
  })

  test('a rule without a capture group forwards the remainder after the base path', async () => {
    const before = c.requests.length
    const r = await get('/api/plain/a/b?z=1')
    assert.equal(r.status, 200)
    assert.equal(c.requests.length, before + 1)
    assert.equal(c.requests.at(-1)!.url, '/plain/a/b?z=1')
  })

  test('the endpoint URL path is prepended to the rewritten path', async () => {
    const r = await get('/api/pre/x/y')
    assert.equal(r.status, 200)
    assert.equal(r.json().url, '/base/x/y')
  })

  test('host rules match the Host header without its port', async () => {
    const before = c.requests.length
    const r = await get('/api/v1/h', { host: 'admin.example.com:8443' })
    assert.equal(r.status, 200)
    assert.equal(c.requests.length, before + 1)
    assert.equal(c.requests.at(-1)!.url, '/h')
  })

  test('header rules are anchored regexes on the header value', async () => {
    const n = c.requests.length
    await get('/api/v1/hdr', { 'x-canary': 'true' })
    assert.equal(c.requests.length, n + 1)
    await get('/api/v1/hdr', { 'x-canary': 'truely' })
    assert.equal(c.requests.length, n + 1, 'x-canary: truely must not match "yes|true"')
  })

  test('method rules select a route and a method that matches no rule is 404 problem+json', async () => {
    const del = await get('/api/v1/items/9', {}, 'DELETE')
    assert.equal(del.status, 200)
    assert.equal(c.requests.at(-1)!.method, 'DELETE')
    const put = await get('/api/v1/items/9', {}, 'PUT')
    assert.equal(put.status, 404)
    assert.equal(put.headers['content-type'], 'application/problem+json')
    const body = JSON.parse(put.text) as { code: string; status: number; type: string; title: string }
    assert.equal(body.code, 'GH_ERR_ROUTE_NOT_FOUND')
    assert.equal(body.status, 404)
    assert.match(body.type, /route-not-found$/)
  })

  test('base paths match whole segments: /apix is its own API, not under /api', async () => {
    const r = await get('/apix/v1/y')
    assert.equal(r.status, 200)
    assert.equal(r.json().url, '/v1/y')
    const none = await get('/nothing/here')
    assert.equal(none.status, 404)
  })

  test('a 90/10 split lands within ±5% over 2000 requests', async () => {
    const na = a.requests.length
    const nb = b.requests.length
    const total = 2000
    for (let i = 0; i < total; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => get('/api/v1/split')))
    }
    const ca = a.requests.length - na
    const cb = b.requests.length - nb
    assert.equal(ca + cb, total)
    assert.ok(Math.abs(ca / total - 0.9) <= 0.05, `service a got ${ca} of ${total}`)
    assert.ok(Math.abs(cb / total - 0.1) <= 0.05, `service b got ${cb} of ${total}`)
  })

  test('hop-by-hop headers are stripped and X-Forwarded-* and X-Request-Id are set', async () => {
    const n = a.requests.length + b.requests.length
    // Raw bytes: HTTP clients refuse to send most hop-by-hop headers themselves.
    const r = await rawRequest(port, 'GET /api/v1/hop HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      'Connection: keep-alive, x-secret-hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n' +
      'Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nProxy-Foo: 1\r\nUpgrade: h2c\r\n' +
      'X-Forwarded-For: 203.0.113.9\r\nX-Keep: me\r\n\r\n')
    assert.equal(statusOf(r.text), 200)
    assert.equal(a.requests.length + b.requests.length, n + 1)
    const got = [...a.requests, ...b.requests].find((q) => q.url === '/hop')!
    const h = got.headers
    for (const gone of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection', 'proxy-foo', 'upgrade', 'expect']) {
      assert.equal(h[gone], undefined, `${gone} must not reach the upstream`)
    }
    assert.equal(h['x-keep'], 'me')
    // 127.0.0.1 is not a trusted proxy here: the client's X-Forwarded-For is replaced.
    assert.equal(h['x-forwarded-for'], '127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'http')
    assert.equal(h['x-forwarded-host'], '127.0.0.1')
    assert.match(String(h['x-request-id']), /^[0-9a-f-]{36}$/)
    assert.ok([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].includes(h.host!), `upstream Host is the endpoint's, got ${h.host}`)
  })

  test('an incoming X-Request-Id is kept', async () => {
    const r = await get('/api/v1/rid', { 'x-request-id': 'abc-123' })
    assert.equal(r.json().headers['x-request-id'], 'abc-123')
  })

  test('preserveHost forwards the client Host header', async () => {
    const r = await get('/apix/other', { host: 'shop.example' })
    assert.equal(r.status, 200)
    assert.equal(r.json().headers.host, 'shop.example')
  })
})

describe('forwarding headers behind a trusted proxy', () => {
  let gw: Gateway
  let up: Upstream
  let port: number

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'api.yaml': catchAllConfig(port, '/t', [up.origin], { host: '  trustedProxies: [127.0.0.0/8]\n' }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('X-Forwarded-For from a trusted proxy is appended to and its X-Forwarded-Proto kept', async () => {
    const r = await request(`http://127.0.0.1:${port}/t/x`, { headers: { 'x-forwarded-for': '203.0.113.9, 10.1.2.3', 'x-forwarded-proto': 'https' } })
    const h = (JSON.parse(await r.body.text()) as { headers: Record<string, string> }).headers
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 10.1.2.3, 127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'https')
  })

  test('without an incoming X-Forwarded-For the client address is the whole chain', async () => {
    const r = await request(`http://127.0.0.1:${port}/t/x`)
    const h = (JSON.parse(await r.body.text()) as { headers: Record<string, string> }).headers
    assert.equal(h['x-forwarded-for'], '127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'http')
  })
})
