/**
 * The export half of tracing: finished spans as plain `ReadableSpan` records, a bounded
 * batch queue, and the OpenTelemetry OTLP/HTTP (JSON) exporter.
 *
 * Why not the SDK's Tracer and BatchSpanProcessor: the worker decides sampling and
 * propagates the context itself (tracing.ts) and only knows a span's times once the
 * exchange ended, so a span is built once, finished, from the Exchange's timings; the
 * Tracer would add a context object, a sampler call and a mutable Span per span for
 * nothing. The batcher is ours because the SDK's one drops without telling anyone how
 * much: here every span lost to a full queue or a failed export is counted
 * (`tracingStats()`), and a request never waits on the collector.
 *
 * Bounds: at most `maxQueue` spans wait; one export in flight at a time; the exporter
 * gives up after `timeoutMs` (its own retries of 429/502/503/504 stay inside that).
 *
 * @module
 */
import type { HrTime, SpanContext, SpanKind, SpanStatus, Attributes, TraceState } from '@opentelemetry/api'
import type { ExportResult } from '@opentelemetry/core'
import type { InstrumentationScope } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources'
import type { ReadableSpan, SpanExporter, TimedEvent } from '@opentelemetry/sdk-trace-base'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import os from 'node:os'

export interface TracingStats {
  /** Spans handed to the queue. */
  spansQueued: number
  /** Spans the collector accepted. */
  spansExported: number
  /** Spans dropped because the queue was full (collector slow or down). */
  spansDropped: number
  /** Spans lost in failed exports (collector down, timeout, rejected). */
  spansFailed: number
  /** Failed export requests. */
  exportFailures: number
}

const stats: TracingStats = { spansQueued: 0, spansExported: 0, spansDropped: 0, spansFailed: 0, exportFailures: 0 }

/** Counters of this worker since it started (for metrics: all are monotonic). */
export function tracingStats(): Readonly<TracingStats> {
  return { ...stats }
}

/** Spans that had no pipeline to go to (the exporter could not be created). */
export function countDropped(n: number): void {
  stats.spansDropped += n
}

/** Spans lost either way: the number an operator alerts on. */
export function droppedSpans(): number {
  return stats.spansDropped + stats.spansFailed
}

// ── time ──
// performance.now() milliseconds → epoch HrTime. The origin is split once so the sum
// keeps nanosecond digits (epoch milliseconds as one double keep only ~0.2 µs).
const ORIGIN = performance.timeOrigin
const ORIGIN_SEC = Math.floor(ORIGIN / 1000)
const ORIGIN_NS = Math.round((ORIGIN - ORIGIN_SEC * 1000) * 1e6)

export function hrTimeOf(perfMs: number): HrTime {
  const ns = ORIGIN_NS + Math.round(perfMs * 1e6)
  const sec = Math.floor(ns / 1e9)
  return [ORIGIN_SEC + sec, ns - sec * 1e9]
}

function hrDuration(fromMs: number, toMs: number): HrTime {
  const ns = Math.max(0, Math.round((toMs - fromMs) * 1e6))
  const sec = Math.floor(ns / 1e9)
  return [sec, ns - sec * 1e9]
}

/** tracestate as received: passed on verbatim, never parsed (we add no entry of our own). */
export class RawTraceState implements TraceState {
  constructor(private readonly raw: string) {}
  set(): TraceState { return this }
  unset(): TraceState { return this }
  get(): string | undefined { return undefined }
  serialize(): string { return this.raw }
}

const NO_LINKS: never[] = []
const NO_EVENTS: TimedEvent[] = []

/** A finished span: what the OTLP transformer reads, nothing more. */
export class FinishedSpan implements ReadableSpan {
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly duration: HrTime
  readonly ended = true
  readonly links = NO_LINKS
  readonly events: TimedEvent[]
  readonly droppedAttributesCount = 0
  readonly droppedEventsCount = 0
  readonly droppedLinksCount = 0
  readonly parentSpanContext: SpanContext | undefined
  readonly resource: Resource
  readonly instrumentationScope: InstrumentationScope
  private readonly ctx: SpanContext

  constructor(p: Pipeline, readonly name: string, readonly kind: SpanKind, ctx: SpanContext, parent: SpanContext | undefined,
    startMs: number, endMs: number, readonly attributes: Attributes, readonly status: SpanStatus, events: TimedEvent[] | null) {
    this.ctx = ctx
    this.parentSpanContext = parent
    this.startTime = hrTimeOf(startMs)
    this.endTime = hrTimeOf(endMs)
    this.duration = hrDuration(startMs, endMs)
    this.events = events ?? NO_EVENTS
    this.resource = p.resource
    this.instrumentationScope = p.scope
  }

  spanContext(): SpanContext { return this.ctx }
}

export interface PipelineOptions {
  endpoint: string
  serviceName: string
  resourceAttributes: Record<string, string>
  headers: Record<string, string>
  /** Called after a failed export with the error and the number of spans lost. */
  onFailure: (error: Error | undefined, lost: number) => void
  maxQueue?: number
  maxBatch?: number
  delayMs?: number
  timeoutMs?: number
  /** For tests: replaces the OTLP exporter. */
  exporter?: SpanExporter
}

/** One configured export path: resource, exporter, queue. Replaced whole on a settings change. */
export class Pipeline {
  readonly resource: Resource
  readonly scope: InstrumentationScope = { name: 'gatehouse' }
  private readonly exporter: SpanExporter
  private queue: ReadableSpan[] = []
  private timer: NodeJS.Timeout | null = null
  private exporting = false
  private closed = false
  private readonly maxQueue: number
  private readonly maxBatch: number
  private readonly delayMs: number
  private readonly onFailure: PipelineOptions['onFailure']
  /** Resolves the pending flush() callers once the queue is empty and nothing is in flight. */
  private idle: Array<() => void> = []

  constructor(o: PipelineOptions) {
    this.maxQueue = o.maxQueue ?? 2048
    this.maxBatch = o.maxBatch ?? 512
    this.delayMs = o.delayMs ?? 1000
    this.onFailure = o.onFailure
    this.resource = defaultResource().merge(resourceFromAttributes({
      'host.name': os.hostname(),
      'process.pid': process.pid,
      ...o.resourceAttributes,
      [ATTR_SERVICE_NAME]: o.serviceName,
    }))
    this.exporter = o.exporter ?? new OTLPTraceExporter({
      url: o.endpoint,
      headers: o.headers,
      timeoutMillis: o.timeoutMs ?? 5000,
      concurrencyLimit: 2,
    })
  }

  add(span: ReadableSpan): void {
    if (this.closed || this.queue.length >= this.maxQueue) { stats.spansDropped++; return }
    this.queue.push(span)
    stats.spansQueued++
    if (this.exporting) return
    if (this.queue.length >= this.maxBatch) this.schedule(0)
    else if (this.timer === null) this.schedule(this.delayMs)
  }

  private schedule(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = setTimeout(this.exportNext, ms)
    // Never keeps the process alive, except for an explicit flush() someone awaits.
    if (this.idle.length === 0) this.timer.unref()
  }

  private exportNext = (): void => {
    this.timer = null
    if (this.exporting) return
    if (this.queue.length === 0) { this.settleIdle(); return }
    let batch: ReadableSpan[]
    if (this.queue.length <= this.maxBatch) { batch = this.queue; this.queue = [] }
    else batch = this.queue.splice(0, this.maxBatch)
    this.exporting = true
    let done = false
    const finish = (r: ExportResult): void => {
      if (done) return
      done = true
      this.exporting = false
      if (r.code === 0 /* ExportResultCode.SUCCESS */) stats.spansExported += batch.length
      else {
        stats.spansFailed += batch.length
        stats.exportFailures++
        this.onFailure(r.error, batch.length)
      }
      if (this.queue.length > 0) this.schedule(this.queue.length >= this.maxBatch || this.idle.length > 0 ? 0 : this.delayMs)
      else this.settleIdle()
    }
    try {
      this.exporter.export(batch, finish)
    } catch (err) {
      finish({ code: 1, error: err as Error })
    }
  }

  private settleIdle(): void {
    const waiting = this.idle
    this.idle = []
    for (const w of waiting) w()
  }

  /** Exports what is queued; resolves when the queue is empty (bounded by the exporter's timeout). */
  flush(): Promise<void> {
    if (this.queue.length === 0 && !this.exporting) return Promise.resolve()
    const p = new Promise<void>((resolve) => this.idle.push(resolve))
    if (!this.exporting) this.schedule(0)
    else if (this.timer !== null) this.timer.ref()
    return p
  }

  /** Stops taking spans, exports what is left, closes the exporter. */
  async shutdown(): Promise<void> {
    await this.flush()
    this.closed = true
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    await this.exporter.shutdown().catch(() => {})
  }
}
