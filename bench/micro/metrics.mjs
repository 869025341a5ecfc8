#!/usr/bin/env node
// Per-request cost of the metrics subscribers: what one proxied request publishes
// (upstreamStart, upstreamEnd, requestEnd) with metrics on versus off (no subscribers),
// through the real channels and prom-client. Best of 5 batches, ns per request.
// Compare with the gateway's time per request (1e9 / req/s of one worker).
//
// Needs: npm run build.   Usage: node bench/micro/metrics.mjs [--n 200000]
import * as channels from '../../dist/src/telemetry/channels.js'
import { configureWorkerMetrics } from '../../dist/src/telemetry/metrics-worker.js'

const i = process.argv.indexOf('--n')
const N = i === -1 ? 200_000 : Number(process.argv[i + 1])
const src = { slot: '0', inFlight: () => 0, rateLimit: () => ({ storeCalls: 0, storeErrors: 0, fallbacks: 0 }), degraded: () => false, shed: () => ({ inFlight: 0, eventLoopLag: 0 }) }

// 8 routes of one API: a realistic spread of label sets.
const api = { name: 'orders', chain: { request: null } }
const routes = Array.from({ length: 8 }, (_, k) => ({ id: `orders/main#${k}` }))
const service = { snap: { name: 'orders-svc' } }
function exchange(k) {
  const t = performance.now()
  return {
    api, route: routes[k & 7], service, method: 'GET', bytesIn: 0, attempts: 1, outcome: null, decidedBy: null,
    down: { status: 200, bytesOut: 100, state: 2 }, startedAt: t - 0.4, upstreamStartedAt: t - 0.3, upstreamEndedAt: t - 0.05, endedAt: t,
  }
}

function run() {
  const t0 = process.hrtime.bigint()
  for (let k = 0; k < N; k++) {
    const ex = exchange(k)
    if (channels.upstreamStart.hasSubscribers) channels.upstreamStart.publish({ ex, endpoint: null, statusCode: 0, error: null, code: null })
    if (channels.upstreamEnd.hasSubscribers) channels.upstreamEnd.publish({ ex, endpoint: null, statusCode: 200, error: null, code: null })
    if (channels.requestEnd.hasSubscribers) channels.requestEnd.publish(ex)
  }
  return Number(process.hrtime.bigint() - t0) / N
}
function best(label) {
  let b = Infinity
  for (let r = 0; r < 5; r++) b = Math.min(b, run())
  console.log(`${label.padEnd(12)} ${b.toFixed(0).padStart(6)} ns/request`)
  return b
}
configureWorkerMetrics(false, src)
const off = best('metrics off')
configureWorkerMetrics(true, src)
const on = best('metrics on')
configureWorkerMetrics(false, src)
console.log(`metrics cost ${(on - off).toFixed(0)} ns/request (e.g. ${((on - off) / 1e9 * 20000 * 100).toFixed(1)}% of a worker at 20k req/s)`)
