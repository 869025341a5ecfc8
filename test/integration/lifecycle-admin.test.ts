import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import {
  apiYaml, freePort, hostYaml, runCli, serviceYaml, startGateway, startUpstream, stopAndCheck, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

const SECRET = 'sup3r-s3cret-value-9f1c'
const TOKEN = 'admin-token-7d2e81'

function config(port: number, upstream: string, host = ''): Record<string, string> {
  return {
    'api.yaml': apiYaml('adm', port, '/a', `    main:
      service: echo
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config: { requestHeaders: { x-api-key: "\${env:GH_TEST_SECRET}" } }
`),
    'svc.yaml': serviceYaml('echo', [upstream]),
    'host.yaml': hostYaml(host),
  }
}

describe('admin API', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  /** /ready answers seen from the moment the admin port opened until the first 200. */
  const startup: number[] = []

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin))
    gw = await startGateway(dir, { env: { GH_TEST_SECRET: SECRET }, waitReady: false })
    await waitFor('ready', async () => {
      const r = await fetch(`${gw.admin}/ready`).catch(() => null)
      if (r === null) return false
      startup.push(r.status)
      return r.status === 200
    }, 30_000, 10, () => gw.proc.exitCode !== null)
  })

  after(async () => {
    const r = await stopAndCheck(gw)
    assert.equal(r?.code, 0)
    await up?.close()
  })

  test('/live answers 200 while the process runs', async () => {
    const r = await fetch(`${gw.admin}/live`)
    assert.equal(r.status, 200)
    assert.deepEqual(await r.json(), { live: true })
  })

  test('/status lists the primary and each worker with pid, cpu, pinning, restarts, config version and uptime', async () => {
    const s = await fetch(`${gw.admin}/status`).then((r) => r.json()) as {
      pid: number; uptimeMs: number; configVersion: string; ready: boolean
      workers: Array<{ slot: number; pid: number; cpu: number; pinned: boolean; restarts: number; version: string; uptimeMs: number; state: string }>
    }
    assert.equal(s.pid, gw.proc.pid)
    assert.ok(s.uptimeMs > 0)
    assert.match(s.configVersion, /^[0-9a-f]{16}$/)
    assert.equal(s.ready, true)
    assert.equal(s.workers.length, 2)
    for (const [i, w] of s.workers.entries()) {
      assert.equal(w.slot, i)
      assert.ok(Number.isInteger(w.pid) && w.pid > 0 && w.pid !== s.pid)
      assert.equal(w.cpu, i)
      assert.equal(typeof w.pinned, 'boolean')
      assert.equal(w.restarts, 0)
      assert.equal(w.version, s.configVersion)
      assert.ok(w.uptimeMs > 0)
      assert.equal(w.state, 'ready')
    }
  })

  test('/ready is 503 until every worker serves the current config', async () => {
    assert.equal(startup.at(-1), 200)
    for (const s of startup.slice(0, -1)) assert.equal(s, 503)
    // A worker that dies takes readiness away until its replacement acked the config.
    const st = await gw.status()
    process.kill(st.workers[1]!.pid, 'SIGKILL')
    const r503 = await waitFor('/ready 503', async () => {
      const r = await fetch(`${gw.admin}/ready`)
      return r.status === 503 ? await r.json() as { ready: boolean; reason: string } : undefined
    }, 10_000, 5)
    assert.equal(r503.ready, false)
    assert.match(r503.reason, /worker/)
    await waitFor('/ready 200 again', async () => (await fetch(`${gw.admin}/ready`)).status === 200, 20_000)
    const after = await gw.status()
    assert.ok(after.workers.every((w) => w.state === 'ready' && w.version === after.configVersion))
  })

  test('/config shows the running config with ${env:} secrets redacted', async () => {
    // The secret was substituted: the upstream gets it.
    const r = await request(`http://127.0.0.1:${port}/a/x`)
    assert.equal(r.statusCode, 200)
    assert.equal(((await r.body.json()) as { headers: Record<string, string> }).headers['x-api-key'], SECRET)
    const res = await fetch(`${gw.admin}/config`)
    assert.equal(res.status, 200)
    const text = await res.text()
    assert.ok(!text.includes(SECRET), 'the secret never appears in /config')
    const cfg = JSON.parse(text) as { version: string }
    assert.equal(cfg.version, (await gw.status()).configVersion)
    assert.match(text, /"x-api-key": "\[REDACTED\]"/)
    assert.ok(!gw.output().includes(SECRET), 'nor in the logs')
  })

  test('POST /reload answers 200 with the version it serves; unknown endpoints are 404 problem+json', async () => {
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200)
    const body = await r.json() as { ok: boolean; version: string; changed: boolean }
    assert.deepEqual(body, { ok: true, version: (await gw.status()).configVersion, changed: false })
    const nf = await fetch(`${gw.admin}/nope`)
    assert.equal(nf.status, 404)
    assert.equal(nf.headers.get('content-type'), 'application/problem+json')
    const get = await fetch(`${gw.admin}/reload`)
    assert.equal(get.status, 404, 'reload is POST only')
    await get.body?.cancel()
  })
})

describe('admin API access control', () => {
  let up: Upstream
  before(async () => { up = await startUpstream() })
  after(async () => { await up?.close() })

  test('a non-loopback admin address without a token refuses to start with a clear error', async () => {
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin, `  admin: { address: "http://0.0.0.0:${await freePort()}" }\n`))
    const r = await runCli(['start', '--config', dir], { env: { GH_TEST_SECRET: SECRET }, timeoutMs: 20_000 })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /GH_ERR_ADMIN_START/)
    assert.match(r.stderr, /0\.0\.0\.0:\d+ is not loopback; set Configuration\.spec\.admin\.token/)
    assert.doesNotMatch(r.stderr, /GH_WORKER_READY/, 'no worker was started')
  })

  test('with a token, admin requests without Authorization: Bearer get 401 problem+json', async () => {
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin, `  admin: { address: "http://127.0.0.1:9901", token: "${TOKEN}" }\n`))
    const gw = await startGateway(dir, { env: { GH_TEST_SECRET: SECRET }, waitReady: false })
    try {
      const auth = { authorization: `Bearer ${TOKEN}` }
      await waitFor('ready', async () => (await fetch(`${gw.admin}/ready`, { headers: auth }).catch(() => null))?.status === 200, 30_000, 50, () => gw.proc.exitCode !== null)
      assert.equal((await fetch(`${gw.admin}/live`)).status, 200, '/live needs no token')
      for (const [path, method] of [['/status', 'GET'], ['/config', 'GET'], ['/ready', 'GET'], ['/reload', 'POST']] as const) {
        for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }] as Array<Record<string, string>>) {
          const r = await fetch(gw.admin + path, { method, headers })
          assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`)
          assert.equal(r.headers.get('content-type'), 'application/problem+json')
          assert.equal(r.headers.get('www-authenticate'), 'Bearer')
          const body = await r.json() as { status: number; code: string }
          assert.equal(body.status, 401)
          assert.equal(body.code, 'GH_ERR_ADMIN_UNAUTHORIZED')
        }
      }
      const ok = await fetch(`${gw.admin}/config`, { headers: auth })
      assert.equal(ok.status, 200)
      const text = await ok.text()
      assert.ok(!text.includes(TOKEN) && !text.includes(SECRET), 'neither the token nor the secret is shown')
      const cli = await runCli(['status', '--admin', gw.admin, '--token', TOKEN])
      assert.equal(cli.code, 0, cli.stderr)
      const viaEnv = await runCli(['reload', '--admin', gw.admin], { env: { GATEHOUSE_ADMIN_TOKEN: TOKEN } })
      assert.equal(viaEnv.code, 0, viaEnv.stderr)
      const denied = await runCli(['status', '--admin', gw.admin], { env: { GATEHOUSE_ADMIN_TOKEN: '' } })
      assert.equal(denied.code, 1)
    } finally {
      const r = await stopAndCheck(gw)
      assert.equal(r?.code, 0)
    }
  })
})
