#!/usr/bin/env node
// CPU per request of each telemetry subscriber, in one process and free of the noise a
// loaded 2-core machine puts on throughput runs: the publish sequence of one proxied GET
// (requestStart, upstreamStart, upstreamHeaders, upstreamEnd, requestEnd) through the real
// channels and the real metrics, access-log and tracing modules, with
//   off      no subscriber
//   metrics  the worker metrics registry
//   log      one access-log line per request to a file (256 KiB batches, async writes)
//   trace    tracing at 1 % sampling, spans exported to an OTLP/HTTP sink (a child process)
//   all      the three together
// CPU is process.cpuUsage() (all threads: the log file's thread-pool writes count), over
// batches that yield to the event loop every 100 requests so writes and exports progress.
// Prints the best of --rounds runs per scenario and the cost over 'off', in ns per request.
// Compare with the gateway's CPU per request (bench/telemetry.mjs prints it).
//
// Needs: npm run build.   Usage: node bench/micro/telemetry.mjs [--n 100000] [--rounds 5] [--only log|trace|...]
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as channels from '../../dist/src/telemetry/channels.js'
import { configureWorkerMetrics } from '../../dist/src/telemetry/metrics-worker.js'
import { configureAccessLog } from '../../dist/src/telemetry/access-log.js'
import { configureTracing, flushTracing } from '../../dist/src/telemetry/tracing.js'

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i === -1 ? def : Number(process.argv[i + 1]) }
const N = arg('n', 100_000)
const ROUNDS = arg('rounds', 5)
const here = path.dirname(fileURLToPath(import.meta.url))

// ── the OTLP sink, in a child so its CPU is not ours ──
if (process.argv[2] === '--sink') {
  const http = await import('node:http')
  const s = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') }) })
  s.listen(0, '127.0.0.1', () => process.send({ port: s.address().port }))
  process.on('disconnect', () => process.exit(0))
} else {
  const sink = fork(path.join(here, 'telemetry.mjs'), ['--sink'])
  const sinkPort = await new Promise((r) => sink.once('message', (m) => r(m.port)))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-micro-telemetry-'))

  const log = { info() {}, warn() {}, error() {}, debug() {} }
  const metricSources = { slot: '0', inFlight: () => 0, rateLimit: () => ({ storeCalls: 0, storeErrors: 0, fallbacks: 0 }), degraded: () => false, shed: () => ({ inFlight: 0, eventLoopLag: 0, slowReader: 0 }), connections: () => 0, connectionCapped: () => 0 }
  const tracingSnap = (on) => ({ enabled: on, endpoint: `http://127.0.0.1:${sinkPort}/v1/traces`, sampling: 0.01, serviceName: 'bench', resourceAttributes: {}, headers: {} })
  const snapshot = (logOn) => ({ host: { accessLogs: logOn, logDirectory: logOn ? dir : null, accessLogQuery: false }, listeners: [] })

  function configure(scenario) {
    const all = scenario === 'all'
    configureWorkerMetrics(all || scenario === 'metrics', metricSources)
    configureAccessLog(snapshot(all || scenario === 'log'), log)
    configureTracing(tracingSnap(all || scenario === 'trace'), { log })
  }

  // What a proxied small GET looks like to subscribers: 8 routes of one API, one endpoint.
  const api = { name: 'orders', chain: { request: null } }
  const routes = Array.from({ length: 8 }, (_, k) => ({ id: `orders/main#${k}` }))
  const service = { snap: { name: 'orders-svc' } }
  const endpoint = { origin: 'http://127.0.0.1:8080', pathPrefix: '' }
  function exchange(k) {
    const t = performance.now()
    return {
      api, route: routes[k & 7], service, method: 'GET', url: `/orders/items/${k & 1023}`, query: '', upstreamPath: `/items/${k & 1023}`,
      host: 'gw.example:8080', hostname: 'gw.example', clientIp: '10.1.2.3', requestId: '6f1c1c1e-8a4e-4e0b-9a2b-1f2e3d4c5b6a',
      headers: ['host', 'gw.example:8080', 'user-agent', 'k6/0.52', 'accept', '*/*', 'x-forwarded-for', '10.1.2.3', 'x-forwarded-proto', 'http', 'x-request-id', '6f1c1c1e-8a4e-4e0b-9a2b-1f2e3d4c5b6a'],
      bytesIn: 0, attempts: 1, outcome: null, decidedBy: null, consumer: null, trace: null, traceparent: null, ended: false,
      down: { status: 200, bytesOut: 100, state: 2 }, upstreamOrigin: endpoint.origin, upstreamStatus: 200,
      startedAt: t - 0.4, upstreamStartedAt: t - 0.3, upstreamHeadersAt: t - 0.1, upstreamEndedAt: t - 0.05, endedAt: t,
    }
  }
  const call = { ex: null, endpoint, statusCode: 200, error: null, code: null }

  async function run() {
    const c0 = process.cpuUsage()
    for (let k = 0; k < N; k++) {
      const ex = exchange(k)
      call.ex = ex
      if (channels.requestStart.hasSubscribers) channels.requestStart.publish(ex)
      if (channels.upstreamStart.hasSubscribers) channels.upstreamStart.publish(call)
      if (channels.upstreamHeaders.hasSubscribers) channels.upstreamHeaders.publish(call)
      if (channels.upstreamEnd.hasSubscribers) channels.upstreamEnd.publish(call)
      if (channels.requestEnd.hasSubscribers) channels.requestEnd.publish(ex)
      if (k % 100 === 99) await new Promise((r) => setImmediate(r))
    }
    const c = process.cpuUsage(c0)
    return (c.user + c.system) * 1000 / N
  }

  const only = process.argv.indexOf('--only')
  const SCENARIOS = only === -1 ? ['off', 'metrics', 'log', 'trace', 'all'] : ['off', process.argv[only + 1]]
  const best = Object.fromEntries(SCENARIOS.map((s) => [s, Infinity]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of SCENARIOS) {
      configure(s)
      best[s] = Math.min(best[s], await run())
    }
  }
  configure('off')
  await flushTracing?.()
  console.log(`CPU per request (best of ${ROUNDS} x ${N}), ns; cost = scenario - off`)
  for (const s of SCENARIOS) console.log(`${s.padEnd(8)} ${best[s].toFixed(0).padStart(6)}   cost ${(best[s] - best.off).toFixed(0).padStart(5)}`)
  fs.rmSync(dir, { recursive: true, force: true })
  sink.kill('SIGTERM')
  process.exit(0)
}
