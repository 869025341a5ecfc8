import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * api-key through the real gateway: a key in a header (/h, inline keys) and in the query
 * string (/q, a keys file), the 401 answers, the key stripped before the upstream, and
 * the keys file re-read when the config is reloaded.
 */
const hex = (key: string) => createHash('sha256').update(key).digest('hex')

describe('api-key through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string
  let keysFile: string

  const routes = `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`
  function config(forwardKeyOnQuery: boolean): string {
    return apiYaml('h', port, '/h', routes, `  policies:
    - policyRef: { name: api-key }
      config:
        keys: [{ name: billing, keyHash: "sha256:${hex('k-billing')}" }]
`) + '---\n' + apiYaml('q', port, '/q', routes, `  policies:
    - policyRef: { name: api-key }
      config: { in: query, name: key, keysFile: ${keysFile}, forwardKey: ${forwardKeyOnQuery} }
`) + '---\n' + serviceYaml('s', [up.origin]) + '---\n' + hostYaml()
  }

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    keysFile = path.join(dir, 'api-keys')
    writeFileSync(keysFile, `# consumers\nreports:${hex('k-reports')}\n`)
    writeConfig(dir, { 'gw.yaml': config(false) })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  async function call(pathAndQuery: string, headers: Record<string, string> = {}) {
    const r = await request(`http://127.0.0.1:${port}${pathAndQuery}`, { headers })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text }
  }

  function seen(text: string): { url: string; headers: Record<string, string> } {
    return JSON.parse(text) as { url: string; headers: Record<string, string> }
  }

  test('a known key in x-api-key reaches the upstream without the header', async () => {
    const r = await call('/h/items', { 'x-api-key': 'k-billing', 'x-other': 'kept' })
    assert.equal(r.status, 200)
    assert.equal(seen(r.text).headers['x-api-key'], undefined)
    assert.equal(seen(r.text).headers['x-other'], 'kept')
  })

  test('a known key in the query reaches the upstream with the parameter removed and the rest intact', async () => {
    const r = await call('/q/items?a=1&key=k-reports&b=%2F')
    assert.equal(r.status, 200)
    assert.equal(seen(r.text).url, '/items?a=1&b=%2F')
    assert.equal(seen(r.text).url.includes('k-reports'), false)
  })

  test('no key is 401 GH_ERR_AUTH_MISSING with WWW-Authenticate: ApiKey and never reaches the upstream', async () => {
    const n = up.requests.length
    for (const p of ['/h/items', '/q/items?a=1']) {
      const r = await call(p)
      assert.equal(r.status, 401, p)
      assert.equal(r.headers['content-type'], 'application/problem+json')
      assert.equal(r.headers['www-authenticate'], 'ApiKey')
      const problem = JSON.parse(r.text) as { code: string; status: number }
      assert.equal(problem.code, 'GH_ERR_AUTH_MISSING')
      assert.equal(problem.status, 401)
    }
    assert.equal(up.requests.length, n)
  })

  test('an unknown key is 401 GH_ERR_AUTH_INVALID and never reaches the upstream', async () => {
    const n = up.requests.length
    for (const [p, h] of [['/h/items', { 'x-api-key': 'k-reports' }], ['/q/items?key=k-billing', {}], ['/h/items', { 'x-api-key': 'K-BILLING' }]] as const) {
      const r = await call(p, h)
      assert.equal(r.status, 401, p)
      assert.equal(r.headers['www-authenticate'], 'ApiKey')
      assert.equal((JSON.parse(r.text) as { code: string }).code, 'GH_ERR_AUTH_INVALID')
    }
    assert.equal(up.requests.length, n)
  })

  test('the keys file is read again when the config is reloaded', async () => {
    writeFileSync(keysFile, `ops:${hex('k-ops')}\n`)
    // This reload also flips forwardKey, so the YAML changes too
    writeConfig(dir, { 'gw.yaml': config(true) })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200, await rl.clone().text())
    const ok = await call('/q/items?key=k-ops')
    assert.equal(ok.status, 200)
    assert.equal(seen(ok.text).url, '/items?key=k-ops', 'forwardKey keeps the parameter')
    assert.equal((await call('/q/items?key=k-reports')).status, 401)
  })

  test('a reload with a plaintext key in the file is rejected and the running keys keep working', async () => {
    writeFileSync(keysFile, 'ops:letmein\n')
    writeConfig(dir, { 'gw.yaml': config(false) })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 500)
    const body = (await rl.json()) as { code: string; detail: string }
    assert.equal(body.code, 'GH_ERR_RELOAD_FAILED')
    assert.match(body.detail, /api-key: invalid keys file .*api-keys:1: key of "ops" must be the 64 hex digits/s)
    assert.ok(!body.detail.includes('letmein'), 'the key is not echoed')
    assert.equal((await call('/q/items?key=k-ops')).status, 200)
  })

  test('editing only the keys file and reloading picks up the change', async () => {
    writeFileSync(keysFile, `audit:${hex('k-audit')}\n`)
    writeConfig(dir, { 'gw.yaml': config(true) }) // same YAML as the running config
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200)
    assert.equal((await call('/q/items?key=k-audit')).status, 200)
  })
})
