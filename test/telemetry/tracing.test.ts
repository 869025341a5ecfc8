import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { TraceIdRatioBasedSampler, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api'
import type { ExportResult } from '@opentelemetry/core'
import * as channels from '../../src/telemetry/channels.js'
import {
  configureTracing, newSpanId, parseTraceparent, ratioBound, traceIdWord, tracingStats, TraceRecord,
} from '../../src/telemetry/tracing.js'
import { FinishedSpan, Pipeline, hrTimeOf } from '../../src/telemetry/tracing-export.js'
import type { TracingSnap } from '../../src/config/snapshot.js'
import type { Exchange } from '../../src/worker/exchange.js'

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

describe('traceparent parsing', () => {
  test('accepts the W3C example and reads its fields', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7', flags: 1 })
    assert.equal(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')?.flags, 0)
  })

  test('accepts a later version with extra fields, reading the first four', () => {
    assert.equal(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-whatever')?.flags, 3)
  })

  for (const [why, v] of [
    ['empty', ''],
    ['too short', VALID.slice(0, 54)],
    ['version 00 with trailing data', VALID + '-x'],
    ['version ff', 'ff' + VALID.slice(2)],
    ['uppercase hex', VALID.toUpperCase()],
    ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['all-zero parent id', `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`],
    ['wrong separator', VALID.replace(/-/g, '_')],
    ['non-hex flags', VALID.slice(0, 53) + 'zz'],
    ['later version glued to more data', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x'],
  ] as const) {
    test(`rejects ${why}`, () => assert.equal(parseTraceparent(v), null))
  }
})

describe('ids and sampling', () => {
  test('span ids are 16 lowercase hex digits, not zero, and differ', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const id = newSpanId()
      assert.match(id, /^[0-9a-f]{16}$/)
      assert.notEqual(id, '0'.repeat(16))
      seen.add(id)
    }
    assert.equal(seen.size, 2000)
  })

  test('the ratio decision matches OpenTelemetry TraceIdRatioBased for the same trace id', () => {
    for (const ratio of [0, 0.01, 0.25, 0.5, 0.99, 1]) {
      const otel = new TraceIdRatioBasedSampler(ratio)
      const bound = ratioBound(ratio)
      for (let i = 0; i < 500; i++) {
        const traceId = newSpanId() + newSpanId()
        const ours = traceIdWord(traceId) < bound
        const theirs = otel.shouldSample(ROOT_CONTEXT, traceId).decision === 2 /* RECORD_AND_SAMPLED */
        assert.equal(ours, theirs, `${ratio} ${traceId}`)
      }
    }
  })

  test('hrTimeOf maps performance.now() to epoch time', () => {
    const now = performance.now()
    const [s, ns] = hrTimeOf(now)
    const ms = s * 1000 + ns / 1e6
    assert.ok(Math.abs(ms - Date.now()) < 50, `${ms} vs ${Date.now()}`)
    assert.ok(ns >= 0 && ns < 1e9)
  })
})

function snap(o: Partial<TracingSnap>): TracingSnap {
  return { enabled: true, endpoint: 'http://127.0.0.1:9/v1/traces', sampling: 1, serviceName: 'svc', resourceAttributes: {}, headers: {}, ...o }
}

/** The part of an Exchange requestStart subscribers touch. */
function fakeExchange(headers: string[]): Exchange {
  return { headers, trace: null } as unknown as Exchange
}

function tpOf(h: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < h.length; i += 2) if (h[i] === 'traceparent') out.push(h[i + 1]!)
  return out
}

describe('requestStart subscriber', () => {
  test('sampling 0, no traceparent: a new unsampled traceparent and no span state', () => {
    configureTracing(snap({ sampling: 0 }))
    try {
      const ex = fakeExchange(['accept', '*/*', 'tracestate', 'orphan=1'])
      channels.requestStart.publish(ex)
      const tps = tpOf(ex.headers as string[])
      assert.equal(tps.length, 1)
      assert.match(tps[0]!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
      assert.equal(ex.trace, null)
      assert.ok(!(ex.headers as string[]).includes('tracestate'), 'a tracestate without its traceparent is dropped')
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('a new trace is sampled exactly when its own trace id passes the ratio (the flag agrees with the id sent)', () => {
    configureTracing(snap({ sampling: 0.5 }))
    try {
      const bound = ratioBound(0.5)
      let sampled = 0
      for (let i = 0; i < 400; i++) {
        const ex = fakeExchange(['accept', '*/*'])
        channels.requestStart.publish(ex)
        const tp = parseTraceparent(tpOf(ex.headers as string[])[0]!)!
        const expected = traceIdWord(tp.traceId) < bound
        assert.equal(tp.flags, expected ? 1 : 0, tp.traceId)
        assert.equal(ex.trace !== null, expected)
        if (expected) { sampled++; assert.equal((ex.trace as TraceRecord).traceId, tp.traceId) }
      }
      // Both outcomes occur (400 draws at 1/2: the chance of none is 2^-400).
      assert.ok(sampled > 0 && sampled < 400, `${sampled} of 400 sampled`)
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('an incoming traceparent is replaced in place: same trace, our span id, flags kept', () => {
    configureTracing(snap({ sampling: 0 }))
    try {
      const ex = fakeExchange(['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02', 'tracestate', 'a=b'])
      channels.requestStart.publish(ex)
      const h = ex.headers as string[]
      assert.equal(h[0], 'traceparent')
      assert.match(h[1]!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-02$/)
      assert.notEqual(h[1], '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02')
      assert.deepEqual(h.slice(2), ['tracestate', 'a=b'])
      assert.equal(ex.trace, null)
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('a later version continues as version 00 with the same trace id and flags', () => {
    configureTracing(snap({ sampling: 0 }))
    try {
      const ex = fakeExchange(['traceparent', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra'])
      channels.requestStart.publish(ex)
      assert.match((ex.headers as string[])[1]!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/)
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('sampling 1, no traceparent: sampled, and the span state matches the upstream header', () => {
    configureTracing(snap({ sampling: 1 }))
    try {
      const ex = fakeExchange(['accept', '*/*'])
      channels.requestStart.publish(ex)
      const t = ex.trace as TraceRecord
      assert.ok(t instanceof TraceRecord)
      assert.equal(t.parentId, null)
      assert.equal((ex.headers as string[])[3], `00-${t.traceId}-${t.nextClientSpanId}-01`)
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('two traceparent headers are invalid: one new traceparent remains', () => {
    configureTracing(snap({ sampling: 0 }))
    try {
      const ex = fakeExchange(['traceparent', VALID, 'traceparent', VALID])
      channels.requestStart.publish(ex)
      const tps = tpOf(ex.headers as string[])
      assert.equal(tps.length, 1)
      assert.ok(!tps[0]!.includes('4bf92f3577b34da6a3ce929d0e0e4736'))
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('a sampled parent is sampled even at ratio 0 (parent-based); the upstream parent is the first client span', () => {
    configureTracing(snap({ sampling: 0 }))
    try {
      const ex = fakeExchange(['traceparent', VALID])
      channels.requestStart.publish(ex)
      const t = ex.trace as TraceRecord
      assert.ok(t instanceof TraceRecord)
      assert.equal(t.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
      assert.equal(t.parentId, '00f067aa0ba902b7')
      assert.equal((ex.headers as string[])[1], `00-${t.traceId}-${t.nextClientSpanId}-01`)
    } finally { configureTracing(snap({ enabled: false })) }
  })

  test('disabled: nothing subscribes, headers untouched', () => {
    configureTracing(snap({ enabled: false }))
    assert.equal(channels.requestStart.hasSubscribers, false)
    const ex = fakeExchange(['traceparent', VALID])
    if (channels.requestStart.hasSubscribers) channels.requestStart.publish(ex)
    assert.deepEqual(ex.headers, ['traceparent', VALID])
  })
})

class FakeExporter implements SpanExporter {
  batches: ReadableSpan[][] = []
  pending: Array<(r: ExportResult) => void> = []
  constructor(private readonly mode: 'ok' | 'fail' | 'hang') {}
  export(spans: ReadableSpan[], cb: (r: ExportResult) => void): void {
    this.batches.push(spans)
    if (this.mode === 'ok') setImmediate(() => cb({ code: 0 }))
    else if (this.mode === 'fail') setImmediate(() => cb({ code: 1, error: new Error('refused') }))
    else this.pending.push(cb)
  }
  async shutdown(): Promise<void> {}
}

function span(p: Pipeline, i: number): FinishedSpan {
  const now = performance.now()
  return new FinishedSpan(p, `s${i}`, SpanKind.SERVER, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: newSpanId(), traceFlags: 1 },
    undefined, now - 1, now, {}, { code: 0 }, null)
}

describe('export pipeline', () => {
  test('batches by size and delay, one export in flight', async () => {
    const ex = new FakeExporter('ok')
    const before = tracingStats()
    const p = new Pipeline({ endpoint: 'http://127.0.0.1:9/v1/traces', serviceName: 'x', resourceAttributes: {}, headers: {}, onFailure: () => {}, exporter: ex, maxBatch: 10, delayMs: 20 })
    for (let i = 0; i < 25; i++) p.add(span(p, i))
    await p.flush()
    assert.deepEqual(ex.batches.map((b) => b.length), [10, 10, 5])
    assert.equal(tracingStats().spansExported - before.spansExported, 25)
    assert.equal(ex.batches[0]![0]!.resource.attributes['service.name'], 'x')
  })

  test('a full queue drops and counts; a failed export counts its spans and reports', async () => {
    const hang = new FakeExporter('hang')
    const before = tracingStats()
    const p = new Pipeline({ endpoint: 'http://127.0.0.1:9/v1/traces', serviceName: 'x', resourceAttributes: {}, headers: {}, onFailure: () => {}, exporter: hang, maxBatch: 4, maxQueue: 8, delayMs: 1 })
    for (let i = 0; i < 4; i++) p.add(span(p, i))
    await new Promise((r) => setTimeout(r, 10))
    assert.equal(hang.batches.length, 1) // 4 in flight, the queue is empty again
    for (let i = 0; i < 20; i++) p.add(span(p, i)) // 8 fit, 12 dropped, add() never waits
    assert.equal(tracingStats().spansDropped - before.spansDropped, 12)

    const lost: number[] = []
    const failing = new FakeExporter('fail')
    const q = new Pipeline({ endpoint: 'http://127.0.0.1:9/v1/traces', serviceName: 'x', resourceAttributes: {}, headers: {}, onFailure: (_e, n) => lost.push(n), exporter: failing, maxBatch: 5, delayMs: 1 })
    for (let i = 0; i < 7; i++) q.add(span(q, i))
    await q.flush()
    assert.deepEqual(lost, [5, 2])
    assert.equal(tracingStats().spansFailed - before.spansFailed, 7)
    assert.equal(tracingStats().exportFailures - before.exportFailures, 2)
    hang.pending.forEach((cb) => cb({ code: 0 }))
  })
})
