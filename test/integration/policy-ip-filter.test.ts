import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { request } from 'undici'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * ip-filter through the real gateway. Clients connect from 127.0.0.1, so the lists name
 * it (or not); with 127.0.0.1 as a trusted proxy, X-Forwarded-For names the client.
 */
const routes = `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`

function filtered(name: string, port: number, config: string): string {
  return apiYaml(name, port, `/${name}`, routes, `  policies:
    - policyRef: { name: ip-filter }
      config: ${config}
`)
}

async function call(port: number, p: string, headers: Record<string, string> = {}) {
  const r = await request(`http://127.0.0.1:${port}${p}`, { headers })
  const text = await r.body.text()
  return { status: r.statusCode, headers: r.headers, text }
}

function assertForbidden(r: { status: number; headers: Record<string, unknown>; text: string }): void {
  assert.equal(r.status, 403)
  assert.equal(r.headers['content-type'], 'application/problem+json')
  const problem = JSON.parse(r.text) as { code: string; status: number }
  assert.equal(problem.code, 'GH_ERR_IP_FORBIDDEN')
  assert.equal(problem.status, 403)
}

describe('ip-filter through the real gateway behind a trusted proxy', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, {
      'gw.yaml': [
        filtered('allowed', port, '{ allow: [127.0.0.0/8, "::1"] }'),
        filtered('outside', port, '{ allow: [10.0.0.0/8, "2001:db8::/32"] }'),
        filtered('denied', port, '{ allow: [127.0.0.0/8], deny: [127.0.0.1] }'),
        filtered('xff', port, '{ deny: [198.51.100.0/24], useForwardedFor: true }'),
        filtered('xffallow', port, '{ allow: [203.0.113.0/24], useForwardedFor: true }'),
        serviceYaml('s', [up.origin]),
        hostYaml('  trustedProxies: [127.0.0.1]'),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  test('a client inside the allow list reaches the upstream', async () => {
    const r = await call(port, '/allowed/items')
    assert.equal(r.status, 200)
    assert.equal((JSON.parse(r.text) as { url: string }).url, '/items')
  })

  test('a client outside the allow list, or on the deny list, is 403 GH_ERR_IP_FORBIDDEN and never reaches the upstream', async () => {
    const n = up.requests.length
    assertForbidden(await call(port, '/outside/items'))
    assertForbidden(await call(port, '/denied/items'))
    assert.equal(up.requests.length, n)
  })

  test('with useForwardedFor, the forwarded client is filtered, not the proxy', async () => {
    const n = up.requests.length
    assertForbidden(await call(port, '/xff/items', { 'x-forwarded-for': '198.51.100.7' }))
    assert.equal(up.requests.length, n)
    const ok = await call(port, '/xff/items', { 'x-forwarded-for': '203.0.113.5' })
    assert.equal(ok.status, 200)
    assert.equal((JSON.parse(ok.text) as { headers: Record<string, string> }).headers['x-forwarded-for'], '203.0.113.5, 127.0.0.1')
    assert.equal((await call(port, '/xff/items')).status, 200, 'no header: the peer is the client')
  })

  test('only the right-most untrusted X-Forwarded-For entry counts; a spoofed entry left of it is ignored', async () => {
    assert.equal((await call(port, '/xff/items', { 'x-forwarded-for': '198.51.100.7, 203.0.113.5' })).status, 200)
    assertForbidden(await call(port, '/xffallow/items', { 'x-forwarded-for': '203.0.113.5, 198.51.100.7' }))
    assert.equal((await call(port, '/xffallow/items', { 'x-forwarded-for': '198.51.100.7, 203.0.113.5' })).status, 200)
    assertForbidden(await call(port, '/xff/items', { 'x-forwarded-for': 'unknown' }))
  })
})

describe('ip-filter through the real gateway without trusted proxies', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, {
      'gw.yaml': [filtered('xffallow', port, '{ allow: [203.0.113.0/24], useForwardedFor: true }'), serviceYaml('s', [up.origin]), hostYaml()].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  test('an X-Forwarded-For from an untrusted peer is ignored and the peer is filtered', async () => {
    const n = up.requests.length
    assertForbidden(await call(port, '/xffallow/items', { 'x-forwarded-for': '203.0.113.5' }))
    assert.equal(up.requests.length, n)
  })
})
