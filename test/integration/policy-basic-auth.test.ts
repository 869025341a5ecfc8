import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import { request } from 'undici'
import { catchAllConfig, freePort, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * http-basic-authentication through the real gateway: inline bcrypt users and an
 * htpasswd file, the 401 challenge, credentials stripped before the upstream, and the
 * htpasswd file re-read when the config is reloaded.
 */
const sha = (pw: string) => `{SHA}${createHash('sha1').update(pw).digest('base64')}`
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`

describe('http-basic-authentication through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string
  let htpasswd: string
  // Hashed once: a fresh salt per config() would change the YAML, and with it the snapshot version.
  const aliceHash = bcrypt.hashSync('wonderland', 4)

  function config(realm: string): string {
    return catchAllConfig(port, '/b', [up.origin], {
      api: `  policies:
    - policyRef: { name: http-basic-authentication }
      config:
        realm: ${realm}
        users: [{ username: alice, passwordHash: "${aliceHash}" }]
        htpasswdFile: ${htpasswd}
`,
    })
  }

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    htpasswd = path.join(dir, 'htpasswd')
    writeFileSync(htpasswd, `# file users\nbob:${sha('builder')}\ncarol:${bcrypt.hashSync('c4rol', 4)}\n`)
    writeConfig(dir, { 'gw.yaml': config('orders') })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  async function call(headers: Record<string, string> = {}) {
    const r = await request(`http://127.0.0.1:${port}/b/items?x=1`, { headers })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text }
  }

  test('inline and htpasswd users reach the upstream, without the Authorization header', async () => {
    for (const [u, p] of [['alice', 'wonderland'], ['bob', 'builder'], ['carol', 'c4rol']] as const) {
      const r = await call({ authorization: basic(u, p), 'x-trace': u })
      assert.equal(r.status, 200, u)
      const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> }
      assert.equal(seen.url, '/items?x=1')
      assert.equal(seen.headers['x-trace'], u)
      assert.equal(seen.headers.authorization, undefined, 'credentials are not forwarded')
    }
  })

  test('a request without credentials is 401 GH_ERR_AUTH_MISSING with a Basic challenge and never reaches the upstream', async () => {
    const n = up.requests.length
    const r = await call()
    assert.equal(r.status, 401)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal(r.headers['www-authenticate'], 'Basic realm="orders", charset="UTF-8"')
    const problem = JSON.parse(r.text) as { code: string; status: number; title: string }
    assert.equal(problem.code, 'GH_ERR_AUTH_MISSING')
    assert.equal(problem.status, 401)
    assert.equal(up.requests.length, n)
  })

  test('a wrong password, an unknown user and another scheme are refused and never reach the upstream', async () => {
    const n = up.requests.length
    for (const [auth, code] of [
      [basic('alice', 'Wonderland'), 'GH_ERR_AUTH_INVALID'],
      [basic('bob', 'wonderland'), 'GH_ERR_AUTH_INVALID'],
      [basic('mallory', 'x'), 'GH_ERR_AUTH_INVALID'],
      ['Bearer abc', 'GH_ERR_AUTH_MISSING'],
    ] as const) {
      const r = await call({ authorization: auth })
      assert.equal(r.status, 401, auth)
      assert.equal((JSON.parse(r.text) as { code: string }).code, code, auth)
      assert.equal(r.headers['www-authenticate'], 'Basic realm="orders", charset="UTF-8"')
    }
    assert.equal(up.requests.length, n)
  })

  test('the htpasswd file is read again when the config is reloaded', async () => {
    writeFileSync(htpasswd, `dave:${sha('d4ve')}\n`)
    // This reload also changes the realm, so the YAML changes too
    writeConfig(dir, { 'gw.yaml': config('orders-v2') })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200, await rl.clone().text())
    assert.equal(((await rl.json()) as { changed: boolean }).changed, true)
    assert.equal((await call({ authorization: basic('dave', 'd4ve') })).status, 200)
    const gone = await call({ authorization: basic('bob', 'builder') })
    assert.equal(gone.status, 401)
    assert.equal(gone.headers['www-authenticate'], 'Basic realm="orders-v2", charset="UTF-8"')
    assert.equal((await call({ authorization: basic('alice', 'wonderland') })).status, 200, 'inline users stay')
  })

  test('a reload with a broken htpasswd file is rejected and the running users keep working', async () => {
    writeFileSync(htpasswd, 'erin:hunter2\n')
    writeConfig(dir, { 'gw.yaml': config('orders-v3') })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 500)
    const body = (await rl.json()) as { code: string; detail: string }
    assert.equal(body.code, 'GH_ERR_RELOAD_FAILED')
    assert.match(body.detail, /http-basic-authentication: invalid htpasswd file .*htpasswd:1: user "erin": not a bcrypt/s)
    assert.ok(!body.detail.includes('hunter2'), 'the bad line is not echoed')
    assert.equal((await call({ authorization: basic('dave', 'd4ve') })).status, 200)
  })

  test('editing only the htpasswd file and reloading picks up the change', async () => {
    writeFileSync(htpasswd, `frank:${sha('fr4nk')}\n`)
    writeConfig(dir, { 'gw.yaml': config('orders-v2') }) // same YAML as the running config
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200)
    assert.equal((await call({ authorization: basic('frank', 'fr4nk') })).status, 200)
  })
})
