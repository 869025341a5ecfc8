/**
 * Metrics internals: label vocabularies, the merge of worker registries (aggregator per
 * metric), the zero-cost off switch (no subscribers), and the metrics config settings.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import * as channels from '../../src/telemetry/channels.js'
import {
  DURATION_BUCKETS, dumpRegistry, mergeRegistries, methodLabel, registerProcessMetrics, statusClass, upstreamErrorKind, type MetricDump,
} from '../../src/telemetry/metrics.js'
import { configureWorkerMetrics, dumpWorkerMetrics } from '../../src/telemetry/metrics-worker.js'
import { Fixtures, errorsOf } from '../config/helpers.js'
import { loadConfigDir } from '../../src/config/load.js'

describe('metric labels', () => {
  test('methods outside the usual seven are OTHER', () => {
    assert.equal(methodLabel('GET'), 'GET')
    assert.equal(methodLabel('PATCH'), 'PATCH')
    assert.equal(methodLabel('PROPFIND'), 'OTHER')
  })

  test('status codes map to a class, and no status to none', () => {
    assert.deepEqual([101, 204, 304, 429, 503, 0, 700].map(statusClass), ['1xx', '2xx', '3xx', '4xx', '5xx', 'none', 'none'])
  })

  test('upstream codes map to error kinds; our own aborts are not upstream errors', () => {
    assert.equal(upstreamErrorKind('GH_ERR_UPSTREAM_REFUSED'), 'refused')
    assert.equal(upstreamErrorKind('GH_ERR_UPSTREAM_CONNECT_TIMEOUT'), 'timeout')
    assert.equal(upstreamErrorKind('GH_ERR_UPSTREAM_TIMEOUT'), 'timeout')
    assert.equal(upstreamErrorKind('GH_ERR_UPSTREAM_RESET'), 'reset')
    assert.equal(upstreamErrorKind('GH_ERR_UPSTREAM_PROTOCOL'), 'protocol')
    assert.equal(upstreamErrorKind('GH_ERR_INTERNAL'), null)
    assert.equal(upstreamErrorKind(null), null)
  })

  test('duration buckets are fixed and ascending, from 0.5 ms to 10 s', () => {
    assert.equal(DURATION_BUCKETS[0], 0.0005)
    assert.equal(DURATION_BUCKETS.at(-1), 10)
    for (let i = 1; i < DURATION_BUCKETS.length; i++) assert.ok(DURATION_BUCKETS[i]! > DURATION_BUCKETS[i - 1]!)
  })
})

/** A registry shaped like a worker's, with `n` requests and an in-flight gauge of `inFlight`. */
async function workerDump(processName: string, n: number, inFlight: number): Promise<MetricDump> {
  const r = new Registry()
  const c = new Counter({ name: 'gatehouse_requests_total', help: 'h', labelNames: ['api'], registers: [r], aggregator: 'sum' })
  c.inc({ api: 'a' }, n)
  const h = new Histogram({ name: 'gatehouse_request_duration_seconds', help: 'h', labelNames: ['api'], buckets: [0.1, 1], registers: [r], aggregator: 'sum' })
  h.observe({ api: 'a' }, n === 3 ? 0.05 : 0.5)
  new Gauge({ name: 'gatehouse_requests_in_flight', help: 'h', registers: [r], aggregator: 'sum' }).set(inFlight)
  new Gauge({ name: 'gatehouse_ratelimit_store_degraded', help: 'h', registers: [r], aggregator: 'max' }).set(processName === 'worker-1' ? 1 : 0)
  registerProcessMetrics(r, processName)
  return await dumpRegistry(r)
}

describe('merging worker registries', () => {
  test('counters, histograms and in-flight gauges sum; max gauges take the max', async () => {
    const text = await mergeRegistries([await workerDump('worker-0', 3, 1), await workerDump('worker-1', 4, 2)])
    assert.match(text, /^gatehouse_requests_total\{api="a"\} 7$/m)
    assert.match(text, /^gatehouse_request_duration_seconds_count\{api="a"\} 2$/m)
    assert.match(text, /^gatehouse_request_duration_seconds_bucket\{le="0.1",api="a"\} 1$/m)
    assert.match(text, /^gatehouse_requests_in_flight 3$/m)
    assert.match(text, /^gatehouse_ratelimit_store_degraded 1$/m)
  })

  test('Node process metrics stay one series per process, start time included', async () => {
    const text = await mergeRegistries([await workerDump('worker-0', 1, 0), await workerDump('worker-1', 1, 0)])
    for (const p of ['worker-0', 'worker-1']) {
      assert.match(text, new RegExp(`^process_start_time_seconds\\{process="${p}"\\} \\d+`, 'm'))
      assert.match(text, new RegExp(`^nodejs_eventloop_lag_p99_seconds\\{process="${p}"\\} `, 'm'))
      assert.match(text, new RegExp(`^process_resident_memory_bytes\\{process="${p}"\\} `, 'm'))
    }
    assert.doesNotMatch(text, /^nodejs_active_handles_total/m)
  })
})

describe('worker metrics switch', () => {
  const src = { slot: '9', inFlight: () => 0, rateLimit: () => ({ storeCalls: 0, storeErrors: 0, fallbacks: 0 }), degraded: () => false, shed: () => ({ inFlight: 0, eventLoopLag: 0, slowReader: 0 }), connections: () => 0, connectionCapped: () => 0 }
  after(() => configureWorkerMetrics(false, src))

  test('disabled metrics subscribe to nothing and dump nothing', async () => {
    configureWorkerMetrics(false, src)
    assert.equal(channels.requestEnd.hasSubscribers, false)
    assert.equal(channels.upstreamStart.hasSubscribers, false)
    assert.equal(channels.upstreamEnd.hasSubscribers, false)
    assert.deepEqual(await dumpWorkerMetrics(), [])
  })

  test('enabling subscribes, and disabling again unsubscribes every channel', async () => {
    configureWorkerMetrics(true, src)
    assert.equal(channels.requestEnd.hasSubscribers, true)
    assert.equal(channels.upstreamEnd.hasSubscribers, true)
    const names = (await dumpWorkerMetrics()).map((m) => m.name)
    assert.ok(names.includes('gatehouse_requests_total'))
    assert.ok(names.includes('process_cpu_seconds_total'))
    for (const m of await dumpWorkerMetrics()) assert.ok(['sum', 'max', 'first'].includes(m.aggregator), `${m.name}: ${m.aggregator}`)
    configureWorkerMetrics(false, src)
    assert.equal(channels.requestEnd.hasSubscribers, false)
    assert.equal(channels.upstreamStart.hasSubscribers, false)
    assert.equal(channels.upstreamEnd.hasSubscribers, false)
  })
})

describe('metrics settings', () => {
  const fx = new Fixtures()
  after(() => fx.cleanup())
  const host = (line: string): string[] => ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', line]

  test('metrics are on by default and a dedicated address compiles to host and port', async () => {
    const dir = fx.dir({ 'h.yaml': host('  metrics: { address: "http://127.0.0.1:9464" }') })
    const r = await loadConfigDir(dir)
    assert.ok(r.ok)
    assert.deepEqual(r.snapshot.host.metrics, { enabled: true, address: { host: '127.0.0.1', port: 9464 } })
  })

  test('a metrics address that is not http://host:port is rejected where it is written', async () => {
    for (const bad of ['127.0.0.1:9464', 'http://127.0.0.1:9464/metrics', 'http://127.0.0.1:70000', 'https://127.0.0.1:9464']) {
      const errors = await errorsOf(fx.dir({ 'h.yaml': host(`  metrics: { address: "${bad}" }`) }))
      assert.equal(errors.length, 1, `${bad}: ${errors.join('; ')}`)
      assert.match(errors[0]!, /h\.yaml:5.*metrics\/address.*must be an http:\/\/host:port URL|metrics.address.*must be an http:\/\/host:port URL/s)
    }
  })
})
