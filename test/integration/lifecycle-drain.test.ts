import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { request } from 'undici'
import {
  apiYaml, childPids, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, waitFor, waitGone, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

function config(port: number, upstream: string, host = ''): Record<string, string> {
  return {
    'api.yaml': apiYaml('slow', port, '/s', `    main:
      service: slow
      routes: [{ rules: [{ path: (/.*) }] }]
`),
    'svc.yaml': serviceYaml('slow', [upstream], '  timeouts: { responseMs: 60000 }\n'),
    'host.yaml': hostYaml(host),
  }
}

/** `p`, or 'timeout' after `ms` (an unref'd timer, so it never holds the test process). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())])
}

/** Resolves 'refused' or 'accepted' for one fresh connection attempt. */
function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve('accepted') })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'accepted'))
  })
}

/** An upstream that holds every response until release() (or a safety timeout). */
async function heldUpstream(holdMaxMs: number): Promise<{ up: Upstream; release(): void }> {
  let release!: () => void
  const released = new Promise<void>((r) => { release = r })
  const up = await startUpstream((_req, res) => {
    const t = setTimeout(() => release(), holdMaxMs).unref()
    void released.then(() => {
      clearTimeout(t)
      if (res.destroyed) return
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4 })
      res.end('slow')
    })
  })
  return { up, release }
}

describe('stopping a gateway', () => {
  const cleanup: Array<() => Promise<unknown>> = []
  let drainedConnections: Array<string | string[] | undefined> = []
  after(async () => { for (const c of cleanup) await c().catch(() => {}) })

  async function start(host: string, holdMaxMs: number): Promise<{ gw: Gateway; up: Upstream; release(): void; port: number; workers: number[] }> {
    const { up, release } = await heldUpstream(holdMaxMs)
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin, host))
    const gw = await startGateway(dir)
    cleanup.push(async () => { release(); await gw.stop('SIGKILL') }, () => up.close())
    const workers = childPids(gw.proc.pid!)
    assert.equal(workers.length, 2)
    return { gw, up, release, port, workers }
  }

  test('SIGTERM lets slow requests in flight finish with 200, refuses new connections and exits 0', async () => {
    const { gw, up, release, port, workers } = await start('  drainTimeoutMs: 20000\n', 2_000)
    const n = 6
    const inflight = Array.from({ length: n }, async (_, i) => {
      const r = await request(`http://127.0.0.1:${port}/s/slow/${i}`, { headersTimeout: 30_000, bodyTimeout: 30_000 })
      return { status: r.statusCode, body: await r.body.text(), connection: r.headers.connection }
    })
    await waitFor('every slow request to reach the upstream', () => up.requests.length >= n, 10_000)
    gw.proc.kill('SIGTERM')
    // The listeners close at once; the requests are still held by the upstream.
    await waitFor('new connections to be refused', async () => (await tryConnect(port)) === 'refused', 10_000, 20)
    const ready = await fetch(`${gw.admin}/ready`)
    assert.equal(ready.status, 503, 'not ready while draining')
    release()
    const results = await Promise.all(inflight)
    for (const r of results) {
      assert.equal(r.status, 200)
      assert.equal(r.body, 'slow')
    }
    drainedConnections = results.map((r) => r.connection)
    const exit = await gw.exited
    assert.deepEqual(exit, { code: 0, signal: null })
    assert.match(gw.output(), /STOPPING|GH_STOPPING/)
    assert.match(gw.output(), /GH_STOPPED/)
    await waitGone(workers)
    assert.equal(await tryConnect(port), 'refused')
  })

  test('responses to requests in flight when the drain began carry Connection: close', () => {
    assert.ok(drainedConnections.length > 0)
    for (const c of drainedConnections) assert.equal(c, 'close')
  })

  test('requests longer than drainTimeoutMs are cut and the gateway still exits 0', async () => {
    const { gw, up, port, workers } = await start('  drainTimeoutMs: 500\n', 60_000)
    const inflight = request(`http://127.0.0.1:${port}/s/forever`, { headersTimeout: 30_000, bodyTimeout: 30_000 })
      .then((r) => ({ status: r.statusCode }), (err: Error & { code?: string }) => ({ error: err.code ?? err.message }))
    await waitFor('the request to reach the upstream', () => up.requests.length >= 1, 10_000)
    gw.proc.kill('SIGTERM')
    const exit = await within(gw.exited, 15_000)
    assert.deepEqual(exit, { code: 0, signal: null })
    const r = await inflight
    assert.ok('error' in r, `the request was cut, got ${JSON.stringify(r)}`)
    assert.match(gw.output(), /GH_WRN_DRAIN_TIMEOUT/)
    await waitGone(workers)
  })

  test('SIGTERM while a reload runs still drains and exits 0 with no worker left', async () => {
    const { up, release } = await heldUpstream(100)
    release()
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin))
    const gw = await startGateway(dir)
    cleanup.push(async () => { await gw.stop('SIGKILL') }, () => up.close())
    const workers = childPids(gw.proc.pid!)
    writeConfig(dir, config(port, up.origin, '  logging: { runtimeLogs: { logLevel: debug } }\n'))
    const reload = fetch(`${gw.admin}/reload`, { method: 'POST' }).then((r) => r.status, () => 'closed')
    gw.proc.kill('SIGHUP')
    gw.proc.kill('SIGTERM')
    const exit = await within(gw.exited, 30_000)
    assert.deepEqual(exit, { code: 0, signal: null })
    await reload
    await waitGone(workers)
  })

  test('workers of a primary that was SIGKILLed notice the lost channel and exit on their own', async () => {
    const { gw, workers } = await start('', 100)
    gw.proc.kill('SIGKILL')
    await gw.exited
    await waitGone(workers, 15_000)
  })

  test('SIGTERM during start-up exits 0 with no worker left', async () => {
    const { up } = await heldUpstream(100)
    cleanup.push(() => up.close())
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin))
    const gw = await startGateway(dir, { waitReady: false })
    cleanup.push(async () => { await gw.stop('SIGKILL') })
    // As soon as the first worker is forked; keep collecting forks until the primary exits.
    const seen = new Set(await waitFor('a worker forked', () => { const p = childPids(gw.proc.pid!); return p.length > 0 ? p : undefined }, 20_000, 5))
    let exited = false
    void gw.exited.then(() => { exited = true })
    gw.proc.kill('SIGTERM')
    const watch = (async () => {
      while (!exited) { for (const p of childPids(gw.proc.pid!)) seen.add(p); await new Promise((r) => setTimeout(r, 5)) }
    })()
    const exit = await within(gw.exited, 30_000)
    exited = true
    await watch
    assert.deepEqual(exit, { code: 0, signal: null }, gw.output())
    await waitGone([...seen])
  })
})
