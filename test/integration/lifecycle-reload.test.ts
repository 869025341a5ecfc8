import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import {
  apiYaml, freePort, hostYaml, runCli, serviceYaml, startGateway, startLoad, startUpstream, stopAndCheck, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

/** One API whose response header `x-gen` carries the config generation. */
function apiFile(port: number, gen: string, pathRule = '/v1(/.*)'): string {
  return apiYaml('gen', port, '/gen', `    main:
      service: echo
      routes: [{ rules: [{ path: "${pathRule}" }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config: { responseHeaders: { x-gen: "${gen}" } }
`)
}

/** Replaces one file atomically, so a reload never reads half of it. */
function replaceFile(dir: string, name: string, text: string): void {
  const tmp = path.join(dir, `.${name}.tmp`)
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, path.join(dir, name))
}

async function genOf(port: number): Promise<string> {
  // A fresh connection each time, so it may land on either worker.
  const r = await request(`http://127.0.0.1:${port}/gen/v1/x`, { headers: { connection: 'close' }, reset: true })
  await r.body.text()
  assert.equal(r.statusCode, 200)
  return String(r.headers['x-gen'])
}

describe('reloading the configuration of a running gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, {
      'api.yaml': apiFile(port, 'A'),
      'svc.yaml': serviceYaml('echo', [up.origin]),
      'host.yaml': hostYaml(),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    const r = await stopAndCheck(gw)
    assert.equal(r?.code, 0)
    await up?.close()
  })

  test('20 reloads by SIGHUP, POST /reload and `gatehouse reload` under steady load lose no request and each takes effect', async () => {
    const load = startLoad(port, '/gen/v1/load', { clients: 8, maxMs: 15_000, header: 'x-gen' })
    try {
      for (let i = 1; i <= 20; i++) {
        const gen = i % 2 === 1 ? 'B' : 'A'
        const before = (await gw.status()).configVersion
        replaceFile(dir, 'api.yaml', apiFile(port, gen))
        const how = i % 3
        if (how === 0) {
          gw.proc.kill('SIGHUP')
          await waitFor(`reload ${i} (SIGHUP)`, async () => (await gw.status()).configVersion !== before, 10_000)
          // /status moves when the supervisor has the new snapshot; wait for every ack too.
          await waitFor('ready', async () => (await fetch(`${gw.admin}/ready`)).status === 200, 10_000)
        } else if (how === 1) {
          const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
          const body = await r.json() as { ok: boolean; changed: boolean }
          assert.equal(r.status, 200, JSON.stringify(body))
          assert.equal(body.changed, true)
        } else {
          const r = await runCli(['reload', '--admin', gw.admin])
          assert.equal(r.code, 0, r.stderr)
          assert.match(r.stdout, /^reloaded: now serving [0-9a-f]{16}/)
        }
        assert.notEqual((await gw.status()).configVersion, before)
        for (let k = 0; k < 4; k++) assert.equal(await genOf(port), gen, `reload ${i}: new connection ${k} sees generation ${gen}`)
      }
    } finally {
      await load.stop()
    }
    const s = load.stats
    assert.equal(s.failed, 0, `failed requests: ${s.errors.join('; ')}`)
    assert.ok(s.ok > 100, `only ${s.ok} requests under load`)
    // The long-lived connections saw both generations: the swap reaches open connections too.
    assert.ok((s.seen.get('A') ?? 0) > 0 && (s.seen.get('B') ?? 0) > 0, JSON.stringify([...s.seen]))
    const st = await gw.status()
    assert.deepEqual(st.workers.map((w) => w.restarts), [0, 0])
    assert.ok(st.workers.every((w) => w.version === st.configVersion))
  })

  test('concurrent reload requests are serialised and all settle on the newest config', async () => {
    replaceFile(dir, 'api.yaml', apiFile(port, 'C'))
    const posts = Array.from({ length: 4 }, () => fetch(`${gw.admin}/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: await r.json() as { version: string } })))
    gw.proc.kill('SIGHUP')
    const results = await Promise.all(posts)
    for (const r of results) assert.equal(r.status, 200)
    const versions = new Set(results.map((r) => r.body.version))
    assert.equal(versions.size, 1)
    await waitFor('ready', async () => (await fetch(`${gw.admin}/ready`)).status === 200, 10_000)
    const st = await gw.status()
    assert.equal(st.configVersion, [...versions][0])
    assert.equal(await genOf(port), 'C')
  })

  test('an invalid config is rejected with file:line:col errors and the old one keeps serving', async () => {
    const good = (await gw.status()).configVersion
    const served = await genOf(port)
    replaceFile(dir, 'api.yaml', apiFile(port, 'BAD', '/v1([a-'))
    try {
      const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
      assert.equal(r.status, 400)
      assert.equal(r.headers.get('content-type'), 'application/problem+json')
      const body = await r.json() as { status: number; code: string; errors: string[] }
      assert.equal(body.status, 400)
      assert.ok(Array.isArray(body.errors) && body.errors.length > 0)
      for (const e of body.errors) assert.match(e, /api\.yaml:\d+:\d+: /)
      assert.ok(body.errors.some((e) => /path/.test(e)), body.errors.join('\n'))

      const cli = await runCli(['reload', '--admin', gw.admin])
      assert.equal(cli.code, 1)
      assert.match(cli.stderr, /api\.yaml:\d+:\d+: /)
      assert.match(cli.stderr, /reload rejected/)

      gw.proc.kill('SIGHUP')
      await waitFor('the SIGHUP reload to be rejected', () => /GH_ERR_RELOAD_FAILED[\s\S]*GH_ERR_RELOAD_FAILED[\s\S]*GH_ERR_RELOAD_FAILED/.test(gw.output()), 10_000)

      assert.equal((await gw.status()).configVersion, good)
      assert.equal(await genOf(port), served)
      assert.equal((await fetch(`${gw.admin}/ready`)).status, 200)
    } finally {
      replaceFile(dir, 'api.yaml', apiFile(port, served))
    }
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200)
    assert.equal((await r.json() as { changed: boolean }).changed, false, 'the restored file is the config that kept serving')
  })

  test('changing workers or the admin address reloads the rest and logs that they need a restart', async () => {
    const before = await gw.status()
    replaceFile(dir, 'host.yaml', hostYaml().replace('workers: 2', 'workers: 1') + '  admin: { address: "http://127.0.0.1:9902" }\n')
    replaceFile(dir, 'api.yaml', apiFile(port, 'R'))
    try {
      const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
      assert.equal(r.status, 200)
      assert.match(gw.output(), /GH_WRN_RESTART_REQUIRED.*workers 2 → 1, admin\.address take effect only on restart/)
      assert.equal(await genOf(port), 'R')
      const after = await gw.status()
      assert.deepEqual(after.workers.map((w) => w.pid), before.workers.map((w) => w.pid), 'still the same two workers')
      assert.equal((await fetch(`${gw.admin}/live`)).status, 200, 'the admin API stays where it was')
    } finally {
      replaceFile(dir, 'host.yaml', hostYaml())
    }
    assert.equal((await fetch(`${gw.admin}/reload`, { method: 'POST' })).status, 200)
  })
})

describe('watch: true in the Configuration', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, {
      'api.yaml': apiFile(port, 'W1'),
      'svc.yaml': serviceYaml('echo', [up.origin]),
      'host.yaml': hostYaml('  watch: true\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    const r = await stopAndCheck(gw)
    assert.equal(r?.code, 0)
    await up?.close()
  })

  test('editing a file in the config directory reloads it', async () => {
    assert.equal(await genOf(port), 'W1')
    fs.writeFileSync(path.join(dir, 'api.yaml'), apiFile(port, 'W2'))
    await waitFor('the edit to be served', async () => (await genOf(port)) === 'W2', 15_000, 200)
    assert.match(gw.output(), /GH_RELOADED/)
  })

  test('an invalid edit is rejected and the last good config keeps serving', async () => {
    const v = (await gw.status()).configVersion
    fs.writeFileSync(path.join(dir, 'api.yaml'), apiFile(port, 'W3', '/v1(['))
    await waitFor('the bad edit to be rejected', () => /GH_ERR_RELOAD_FAILED/.test(gw.output()), 15_000, 100)
    assert.equal(await genOf(port), 'W2')
    assert.equal((await gw.status()).configVersion, v)
  })
})
