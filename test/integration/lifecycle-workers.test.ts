import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { cpuOf } from '../../src/primary/cpu-affinity.js'
import {
  apiYaml, freePort, hostYaml, isAlive, serviceYaml, startGateway, startLoad, startUpstream, stopAndCheck, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

function apiFile(port: number, gen: string): string {
  return apiYaml('w', port, '/w', `    main:
      service: echo
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config: { responseHeaders: { x-gen: "${gen}" } }
`)
}

const HOST = (hb = '{ intervalMs: 200, misses: 5 }') => hostYaml().replace(/heartbeat: .*/, `heartbeat: ${hb}`)

describe('worker supervision: pinning, crashes, hangs', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, { 'api.yaml': apiFile(port, 'A'), 'svc.yaml': serviceYaml('echo', [up.origin]), 'host.yaml': HOST() })
    gw = await startGateway(dir)
  })

  after(async () => {
    const r = await stopAndCheck(gw)
    assert.equal(r?.code, 0, gw.output().slice(-4000))
    await up?.close()
  })

  async function get(): Promise<{ status: number; gen: string }> {
    const r = await request(`http://127.0.0.1:${port}/w/x`, { headers: { connection: 'close' }, reset: true })
    await r.body.text()
    return { status: r.statusCode, gen: String(r.headers['x-gen']) }
  }

  async function statusReady(): Promise<Awaited<ReturnType<Gateway['status']>>> {
    return await waitFor('every worker ready on the current config', async () => {
      const s = await gw.status()
      return s.workers.every((w) => w.state === 'ready' && w.version === s.configVersion) ? s : undefined
    }, 20_000, 100)
  }

  test('worker i is pinned to CPU i and /status says so', async () => {
    const s = await waitFor('pinned', async () => {
      const st = await gw.status()
      return st.workers.every((w) => w.pinned) ? st : undefined
    }, 10_000)
    assert.equal(s.workers.length, 2)
    s.workers.forEach((w, i) => {
      assert.equal(w.cpu, i)
      assert.deepEqual(cpuOf(w.pid), [i], `worker ${w.pid} affinity`)
    })
  })

  test('a worker SIGKILLed under load is replaced and the other keeps serving', async () => {
    const before = await statusReady()
    const victim = before.workers[0]!
    const other = before.workers[1]!
    const clients = 8
    const load = startLoad(port, '/w/load', { clients, maxMs: 15_000 })
    await waitFor('load running', () => load.stats.ok > 50, 10_000, 20)
    process.kill(victim.pid, 'SIGKILL')
    const after = await waitFor('slot 0 replaced', async () => {
      const s = await gw.status()
      const w = s.workers[0]!
      return w.pid !== victim.pid && w.state === 'ready' && w.version === s.configVersion ? s : undefined
    }, 20_000, 100)
    const during = await load.stop()
    assert.equal(after.workers[0]!.restarts, victim.restarts + 1)
    assert.equal(after.workers[1]!.pid, other.pid, 'the other worker was left alone')
    assert.equal(after.workers[1]!.restarts, other.restarts)
    assert.equal(after.workers[0]!.cpu, 0)
    assert.ok(!isAlive(victim.pid))
    // Each client has at most one request in flight: only those on the killed worker can fail.
    assert.ok(during.failed <= clients, `${during.failed} failed: ${during.errors.join('; ')}`)
    assert.ok(during.ok > during.failed)

    const steady = startLoad(port, '/w/load', { clients, maxMs: 2_000, maxRequests: 400 })
    const s = await steady.stop()
    assert.equal(s.failed, 0, s.errors.join('; '))
    await waitFor('replacement pinned', async () => (await gw.status()).workers[0]!.pinned, 5_000)
    assert.deepEqual(cpuOf(after.workers[0]!.pid), [0])
  })

  test('a reload while a worker restarts reaches the replacement too', async () => {
    const before = await statusReady()
    const victim = before.workers[1]!
    writeConfig(dir, { 'api.yaml': apiFile(port, 'B'), 'svc.yaml': serviceYaml('echo', [up.origin]), 'host.yaml': HOST() })
    process.kill(victim.pid, 'SIGKILL')
    // The supervisor restarts after a 100 ms backoff; reload right away, inside that window.
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200, await r.text())
    const s = await statusReady()
    assert.notEqual(s.workers[1]!.pid, victim.pid)
    assert.notEqual(s.configVersion, before.configVersion)
    for (const w of s.workers) assert.equal(w.version, s.configVersion)
    for (let i = 0; i < 20; i++) {
      const g = await get()
      assert.equal(g.status, 200)
      assert.equal(g.gen, 'B', `new connection ${i} is served by the new config`)
    }
  })

  test('a SIGSTOPped worker misses heartbeats and is replaced', async () => {
    const before = await statusReady()
    const victim = before.workers[0]!
    process.kill(victim.pid, 'SIGSTOP')
    try {
      const s = await waitFor('the hung worker replaced', async () => {
        const st = await gw.status()
        const w = st.workers[0]!
        return w.pid !== victim.pid && w.state === 'ready' ? st : undefined
      }, 20_000, 100)
      assert.equal(s.workers[0]!.restarts, victim.restarts + 1)
      assert.match(gw.output(), new RegExp(`GH_ERR_WORKER_HUNG.*worker ${victim.pid}`))
      await waitFor('the stopped worker gone', () => !isAlive(victim.pid), 5_000)
    } finally {
      if (isAlive(victim.pid)) process.kill(victim.pid, 'SIGKILL')
    }
    for (let i = 0; i < 10; i++) assert.equal((await get()).status, 200)
  })

  test('a reload that lengthens the heartbeat interval does not get healthy workers killed', async () => {
    const hungCount = (): number => gw.output().split('GH_ERR_WORKER_HUNG').length - 1
    const before = await statusReady()
    const hungBefore = hungCount()
    // 1 s × 2 misses: longer than the old 200 ms × 5 limit the primary started with.
    writeConfig(dir, { 'api.yaml': apiFile(port, 'B'), 'svc.yaml': serviceYaml('echo', [up.origin]), 'host.yaml': HOST('{ intervalMs: 1000, misses: 2 }') })
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200)
    await new Promise((res) => setTimeout(res, 3_500))
    const s = await gw.status()
    assert.deepEqual(s.workers.map((w) => w.pid), before.workers.map((w) => w.pid))
    assert.deepEqual(s.workers.map((w) => w.restarts), before.workers.map((w) => w.restarts))
    assert.equal(hungCount(), hungBefore, 'no worker was taken for hung')
  })
})
