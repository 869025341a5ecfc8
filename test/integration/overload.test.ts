/**
 * Load shedding through the real gateway (primary + one worker, so the per-worker limits
 * are what one connection meets): the in-flight cap against an upstream that holds its
 * answers, event-loop lag from a worker that really cannot run (SIGSTOP, as a host under
 * CPU starvation or cgroup throttling would stall it), the admin API answering meanwhile,
 * the shed counters, the once-per-episode log lines, and the tcp_migrate_req report.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import {
  apiYaml, freePort, serviceYaml, sleep, startGateway, startUpstream, stopAndCheck, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

/**
 * One GET on a fresh connection, asking to keep it alive (so `Connection: close` in the
 * answer is the gateway's own decision; uWS leaves it out when the client asked for close).
 */
function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, timeout: 30_000, headers: { connection: 'keep-alive' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); req.destroy() })
    })
    req.on('timeout', () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
    req.end()
  })
}

function config(port: number, origin: string, overload: string): Record<string, string> {
  return {
    'gw.yaml': apiYaml('api', port, '/o', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`) + '---\n' + serviceYaml('s', [origin], '  timeouts: { responseMs: 60000 }\n') + `---
apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: 1
  heartbeat: { intervalMs: 250, misses: 8 }
  overload: ${overload}
`,
  }
}

/** A sample's value from the exposition text (labels in any order), or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',')
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    if ((m[2] ?? '').split(',').filter((x) => x !== '').sort().join(',') === want) return Number(m[3])
  }
  return undefined
}

async function metrics(gw: Gateway): Promise<string> {
  const r = await fetch(`${gw.admin}/metrics`)
  assert.equal(r.status, 200)
  return await r.text()
}

/** Runtime log lines (JSON) of the gateway with `code`. */
function logLines(gw: Gateway, code: string): Array<Record<string, unknown>> {
  return gw.output().split('\n').filter((l) => l.startsWith('{') && l.includes(`"code":"${code}"`)).map((l) => JSON.parse(l) as Record<string, unknown>)
}

function assertShed(r: Reply): void {
  assert.equal(r.status, 503)
  assert.equal(r.headers['retry-after'], '1')
  assert.equal(r.headers.connection, 'close')
  assert.equal(r.headers['content-type'], 'application/problem+json')
  const body = JSON.parse(r.body) as Record<string, unknown>
  assert.equal(body.code, 'GH_ERR_OVERLOADED')
  assert.equal(body.status, 503)
}

describe('the in-flight cap', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let release!: () => void
  const released = new Promise<void>((r) => { release = r })

  before(async () => {
    // Holds every answer until release() (or a safety timeout, so nothing hangs forever).
    up = await startUpstream((_req, res) => {
      const t = setTimeout(release, 30_000).unref()
      void released.then(() => {
        clearTimeout(t)
        if (res.destroyed) return
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 })
        res.end('ok')
      })
    })
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin, '{ maxRequestsInFlight: 4, maxEventLoopLagMs: 0 }'))
    gw = await startGateway(dir)
  })
  after(async () => { release(); await stopAndCheck(gw); await up?.close() })

  test('past maxRequestsInFlight a request gets 503 GH_ERR_OVERLOADED at once; once the held ones finish, requests pass again', async () => {
    let settled = 0
    const held = Array.from({ length: 4 }, (_, i) => get(port, `/o/held/${i}`).finally(() => { settled++ }))
    await waitFor('four requests held by the upstream', () => up.requests.length === 4, 10_000)

    const shed: Reply[] = []
    for (let i = 0; i < 3; i++) shed.push(await get(port, `/o/more/${i}`))
    for (const r of shed) assertShed(r)
    assert.equal(settled, 0, 'the shed answers came while the held requests were still held')
    assert.equal(up.requests.length, 4, 'a shed request never reaches the upstream')

    // The admin API (the primary) answers while the worker sheds.
    assert.equal((await fetch(`${gw.admin}/ready`)).status, 200)
    assert.equal((await fetch(`${gw.admin}/status`)).status, 200)

    const text = await metrics(gw)
    assert.equal(sample(text, 'gatehouse_requests_shed_total', { reason: 'in_flight' }), 3)
    assert.equal(sample(text, 'gatehouse_requests_shed_total', { reason: 'event_loop_lag' }), 0)
    // Seen by telemetry like any other rejection before routing.
    assert.equal(sample(text, 'gatehouse_requests_total', { api: 'none', route: 'none', method: 'GET', status_class: '5xx' }), 3)

    release()
    for (const r of await Promise.all(held)) assert.equal(r.status, 200)
    for (let i = 0; i < 6; i++) assert.equal((await get(port, `/o/after/${i}`)).status, 200)

    // One line when the episode started and one when it ended, not one per request.
    await waitFor('the end of the shedding episode to be logged', () => logLines(gw, 'GH_WRN_SHEDDING_STOPPED').length === 1, 10_000)
    const started = logLines(gw, 'GH_WRN_SHEDDING_STARTED')
    assert.equal(started.length, 1)
    assert.equal(started[0]!.reason, 'in_flight')
    const stopped = logLines(gw, 'GH_WRN_SHEDDING_STOPPED')[0]!
    assert.equal(stopped.reason, 'in_flight')
    assert.equal(stopped.shed, 3)
  })

  test('/status reports net.ipv4.tcp_migrate_req as the kernel has it, with a warning exactly when it is 0 or missing', async () => {
    let want: number | null = null
    try { want = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim()) } catch {}
    const status = await (await fetch(`${gw.admin}/status`)).json() as { system: { tcpMigrateReq: number | null }; warnings: Array<{ code: string; message: string }> }
    assert.equal(status.system.tcpMigrateReq, want)
    const warned = want === 0 || want === null
    assert.deepEqual(status.warnings.map((w) => w.code), warned ? ['GH_WRN_TCP_MIGRATE_REQ'] : [])
    assert.equal(logLines(gw, 'GH_WRN_TCP_MIGRATE_REQ').length, warned ? 1 : 0)
    if (warned) assert.match(status.warnings[0]!.message, /sysctl -w net\.ipv4\.tcp_migrate_req=1/)
  })
})

describe('event-loop lag', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let workerPid = 0
  let stopped = false

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, config(port, up.origin, '{ maxEventLoopLagMs: 100 }'))
    gw = await startGateway(dir)
    workerPid = (await gw.status()).workers[0]!.pid
  })
  after(async () => {
    if (stopped) process.kill(workerPid, 'SIGCONT')
    await stopAndCheck(gw)
    await up?.close()
  })

  test('a worker whose loop stalled past maxEventLoopLagMs sheds with 503 while /ready and /status answer, then serves again', async () => {
    await waitFor('the worker to serve', async () => (await get(port, '/o/warm')).status === 200, 10_000)
    let shedReply: Reply | null = null
    // Each cycle stalls the worker's whole process for 400 ms (4× the threshold), which its
    // lag timer sees as one late firing once it runs again; then it sheds for a second.
    for (let cycle = 0; cycle < 5 && shedReply === null; cycle++) {
      process.kill(workerPid, 'SIGSTOP')
      stopped = true
      try {
        // The worker cannot run at all: the primary still answers the admin API.
        assert.equal((await fetch(`${gw.admin}/ready`)).status, 200)
        assert.equal((await fetch(`${gw.admin}/status`)).status, 200)
        await sleep(400)
      } finally {
        process.kill(workerPid, 'SIGCONT')
        stopped = false
      }
      for (let i = 0; i < 20; i++) {
        const r = await get(port, `/o/probe/${cycle}/${i}`)
        if (r.status === 200) continue
        assertShed(r)
        shedReply = r
        // While it sheds: the admin API answers, and so does the next request (shed too).
        const [ready, status, next] = await Promise.all([fetch(`${gw.admin}/ready`), fetch(`${gw.admin}/status`), get(port, `/o/next/${cycle}`)])
        assert.equal(ready.status, 200)
        assert.equal(status.status, 200)
        assert.ok(next.status === 503 || next.status === 200, `unexpected ${next.status}`)
        break
      }
    }
    assert.ok(shedReply !== null, 'the worker shed after a stall of 4× maxEventLoopLagMs')

    await waitFor('the worker to serve 200 again', async () => (await get(port, '/o/after')).status === 200, 10_000)
    const text = await metrics(gw)
    assert.ok((sample(text, 'gatehouse_requests_shed_total', { reason: 'event_loop_lag' }) ?? 0) >= 1)
    assert.equal(sample(text, 'gatehouse_requests_shed_total', { reason: 'in_flight' }), 0)

    await waitFor('the end of the lag episode to be logged', () => logLines(gw, 'GH_WRN_SHEDDING_STOPPED').length >= 1, 10_000)
    const started = logLines(gw, 'GH_WRN_SHEDDING_STARTED')
    assert.ok(started.length >= 1 && started.length <= 5, `one start line per stall at most, got ${started.length}`)
    for (const l of started) { assert.equal(l.reason, 'event_loop_lag'); assert.ok((l.lagMs as number) > 100) }
  })
})
