/**
 * Worker-side metrics: a prom-client registry fed by diagnostics_channel subscribers
 * (channels.ts), dumped as JSON when the primary collects a scrape.
 *
 * Off (`metrics.enabled: false`) means no subscriber on any channel, so the request path
 * pays one `hasSubscribers` check per publish point and nothing else; a reload can turn
 * it on or off (series keep their values in between). Gauges that already live in the
 * worker (in-flight requests, rate-limit store counters, shed requests) are read at collect time, never
 * on the request path.
 *
 * Open connections: this uWS build has no connection open/close callbacks; the gauge is
 * the connection cap's estimate from the kernel (descriptors minus upstream connections),
 * read at collect time.
 *
 * Not counted: requests rejected before an Exchange exists (framing, limits, no
 * ApiInstance for the path): they never reach the seam.
 *
 * @module
 * @example
 * configureWorkerMetrics(snap.host.metrics.enabled, { slot: '0', inFlight: () => n, rateLimit: () => c, degraded: () => false, shed: () => s })
 * const dump = await dumpWorkerMetrics() // → the primary, in a gh:metrics message
 */
import { Counter, Gauge, Registry } from 'prom-client'
import * as channels from './channels.js'
import type { Exchange } from '../worker/exchange.js'
import { DownState } from '../worker/downstream.js'
import { matchAny } from '../worker/rules.js'
import {
  DURATION_BUCKETS, METHOD_LABELS, NO_ROUTE, PREFIX, SIZE_BUCKETS, UPSTREAM_ERROR_KINDS, dumpRegistry, registerProcessMetrics, statusClass,
  upstreamErrorKind, type MetricDump,
} from './metrics.js'
import { SeriesCounter, SeriesHistogram, type CounterSeries, type HistogramSeries } from './metrics-series.js'

export interface WorkerMetricSources {
  /** Worker slot ("0", "1" …): the `process` label of the Node metrics. */
  slot: string
  inFlight(): number
  /** The lease client's counters since the worker started (monotonic). */
  rateLimit(): { storeCalls: number; storeErrors: number; fallbacks: number }
  /** The shared rate-limit store is unreachable and policies run on their fallback. */
  degraded(): boolean
  /** Requests shed by the overload guard since the worker started (monotonic), by reason. */
  shed(): { inFlight: number; eventLoopLag: number; slowReader: number }
  /** Client connections open now (connection-cap.ts: an estimate from /proc, read at collect time only). */
  connections(): number
  /** Times the worker stopped accepting at overload.maxConnections (monotonic). */
  connectionCapped(): number
}

const METHOD_INDEX: Readonly<Record<string, number>> = Object.assign(Object.create(null) as Record<string, number>,
  Object.fromEntries(METHOD_LABELS.map((m, i) => [m, i])))
const OTHER = METHOD_LABELS.length - 1
/** statusClass() for 0..599 by hundreds: index = status / 100 (0 and >= 600: "none"). */
const CLASS_LABELS = [0, 100, 200, 300, 400, 500].map(statusClass)
const KINDS = UPSTREAM_ERROR_KINDS
const UNAVAILABLE = KINDS.indexOf('unavailable')
const STATUS_5XX = KINDS.indexOf('5xx')

/** The series one (api, route) pair updates, found once per route object (WeakMap), not per request. */
interface RouteCell {
  readonly api: string
  readonly route: string
  /** By method index × 6 + status class index; created on first use. */
  readonly requests: Array<CounterSeries | undefined>
  readonly duration: HistogramSeries
  readonly requestSize: HistogramSeries
  readonly responseSize: HistogramSeries
  aborts: CounterSeries | null
}

interface ServiceCell {
  readonly service: string
  readonly duration: HistogramSeries
  readonly errors: Array<CounterSeries | undefined>
}

class WorkerMetrics {
  readonly registry = new Registry()
  private readonly requests: SeriesCounter
  private readonly duration: SeriesHistogram
  private readonly requestSize: SeriesHistogram
  private readonly responseSize: SeriesHistogram
  private readonly clientAborts: SeriesCounter
  private readonly upstreamDuration: SeriesHistogram
  private readonly upstreamErrors: SeriesCounter
  private readonly decisions: SeriesCounter
  /** Keyed by RouteRuntime (or ApiRuntime for unrouted requests); a reload's new objects find the same series by label key. */
  private readonly routeCells = new WeakMap<object, RouteCell>()
  private readonly serviceCells = new WeakMap<object, ServiceCell>()
  /** Request-phase steps → their "admitted" series. */
  private readonly admitted = new WeakMap<object, CounterSeries>()
  private subscribed = false

  constructor(src: WorkerMetricSources) {
    const r = this.registry
    this.requests = new SeriesCounter(r, `${PREFIX}requests_total`, 'Requests answered, by API, route, method and status class.', 'sum')
    this.duration = new SeriesHistogram(r, `${PREFIX}request_duration_seconds`, 'Time from request start to the end of the response, by API and route.', DURATION_BUCKETS, 'sum')
    this.requestSize = new SeriesHistogram(r, `${PREFIX}request_size_bytes`, 'Request body bytes received, by API and route.', SIZE_BUCKETS, 'sum')
    this.responseSize = new SeriesHistogram(r, `${PREFIX}response_size_bytes`, 'Response body bytes sent, by API and route.', SIZE_BUCKETS, 'sum')
    this.clientAborts = new SeriesCounter(r, `${PREFIX}client_aborts_total`, 'Requests whose client went away before the response was complete.', 'sum')
    this.upstreamDuration = new SeriesHistogram(r, `${PREFIX}upstream_request_duration_seconds`,
      'Upstream attempts, from dispatch to the end of the response or the failure, by service.', DURATION_BUCKETS, 'sum')
    this.upstreamErrors = new SeriesCounter(r, `${PREFIX}upstream_errors_total`,
      'Failed upstream attempts by service and kind (refused, timeout, reset, protocol, unavailable, 5xx).', 'sum')
    this.decisions = new SeriesCounter(r, `${PREFIX}policy_decisions_total`,
      'Request-phase policy decisions by API, policy and result (admitted; rejected or answered when the policy responded itself).', 'sum')
    const registers = [r]
    new Gauge({
      name: `${PREFIX}requests_in_flight`, help: 'Requests being handled (stands in for open connections, which this uWS build does not report).',
      registers, aggregator: 'sum',
      collect() { this.set(src.inFlight()) },
    })
    new Gauge({
      name: `${PREFIX}connections_open`, help: 'Client connections open (from the worker\'s descriptors, less its upstream connections).',
      registers, aggregator: 'sum',
      collect() { this.set(src.connections()) },
    })
    new Counter({
      name: `${PREFIX}connection_cap_reached_total`, help: 'Times a worker stopped accepting connections at overload.maxConnections.',
      registers, aggregator: 'sum',
      collect() { this.reset(); this.inc(src.connectionCapped()) },
    })
    const rateLimitCounter = (name: string, help: string, read: (c: ReturnType<WorkerMetricSources['rateLimit']>) => number): void => {
      new Counter({
        name: `${PREFIX}${name}`, help, registers, aggregator: 'sum',
        collect() { this.reset(); this.inc(read(src.rateLimit())) },
      })
    }
    rateLimitCounter('ratelimit_store_calls_total', 'Calls to the shared rate-limit store.', (c) => c.storeCalls)
    rateLimitCounter('ratelimit_store_errors_total', 'Failed or timed-out calls to the shared rate-limit store.', (c) => c.storeErrors)
    rateLimitCounter('ratelimit_fallbacks_total', 'Rate-limit decisions made by the configured fallback because the store was unavailable.', (c) => c.fallbacks)
    new Counter({
      name: `${PREFIX}requests_shed_total`, help: 'Requests shed by reason: in_flight and event_loop_lag (answered 503 GH_ERR_OVERLOADED), slow_reader (cut mid-response, GH_ERR_SLOW_READER).',
      labelNames: ['reason'], registers, aggregator: 'sum',
      collect() {
        const c = src.shed()
        this.reset()
        this.inc({ reason: 'in_flight' }, c.inFlight)
        this.inc({ reason: 'event_loop_lag' }, c.eventLoopLag)
        this.inc({ reason: 'slow_reader' }, c.slowReader)
      },
    })
    new Gauge({
      name: `${PREFIX}ratelimit_store_degraded`, help: '1 while a worker serves rate limits without the shared store (max over workers).',
      registers, aggregator: 'max',
      collect() { this.set(src.degraded() ? 1 : 0) },
    })
    registerProcessMetrics(r, `worker-${src.slot}`)
  }

  setEnabled(on: boolean): void {
    if (on === this.subscribed) return
    this.subscribed = on
    const op = on ? 'subscribe' : 'unsubscribe'
    channels.requestEnd[op](this.onRequestEnd)
    channels.upstreamEnd[op](this.onUpstreamEnd)
  }

  private routeCell(ex: Exchange): RouteCell {
    const owner: object = ex.route ?? ex.api ?? this
    let c = this.routeCells.get(owner)
    if (c === undefined) {
      const api = ex.api === null ? NO_ROUTE : ex.api.name
      const route = ex.route === null ? NO_ROUTE : ex.route.id
      const key = `${api}\0${route}`
      const labels = { api, route }
      c = {
        api, route, requests: [], aborts: null,
        duration: this.duration.get1(key, labels),
        requestSize: this.requestSize.get1(key, labels),
        responseSize: this.responseSize.get1(key, labels),
      }
      this.routeCells.set(owner, c)
    }
    return c
  }

  private serviceCell(svc: { snap: { name: string } } | null): ServiceCell {
    const owner: object = svc ?? this
    let c = this.serviceCells.get(owner)
    if (c === undefined) {
      const service = svc === null ? NO_ROUTE : svc.snap.name
      c = { service, duration: this.upstreamDuration.get1(service, { service }), errors: [] }
      this.serviceCells.set(owner, c)
    }
    return c
  }

  private upstreamError(c: ServiceCell, kind: number): void {
    const s = c.errors[kind] ?? (c.errors[kind] = this.upstreamErrors.get1(`${c.service}\0${KINDS[kind]}`, { service: c.service, kind: KINDS[kind]! }))
    s.value++
  }

  private decision(api: string, policy: string, result: string): CounterSeries {
    return this.decisions.get1(`${api}\0${policy}\0${result}`, { api, policy, result })
  }

  private readonly onRequestEnd = (message: unknown): void => {
    const ex = message as Exchange
    const c = this.routeCell(ex)
    const status = ex.down.status
    const cls = status >= 600 || status < 0 ? 0 : Math.floor(status / 100)
    const mi = METHOD_INDEX[ex.method] ?? OTHER
    const ri = mi * 6 + cls
    const counter = c.requests[ri] ?? (c.requests[ri] = this.requests.get1(`${c.api}\0${c.route}\0${ri}`,
      { api: c.api, route: c.route, method: METHOD_LABELS[mi]!, status_class: CLASS_LABELS[cls]! }))
    counter.value++
    c.duration.observe((ex.endedAt - ex.startedAt) / 1000)
    c.requestSize.observe(ex.bytesIn)
    c.responseSize.observe(ex.down.bytesOut)
    const outcome = ex.outcome
    if (outcome !== null) {
      if (outcome === 'client-abort') (c.aborts ?? (c.aborts = this.clientAborts.get1(`${c.api}\0${c.route}`, { api: c.api, route: c.route }))).value++
      // No endpoint to try at all: no attempt, so upstreamEnd never saw it.
      else if (outcome === 'GH_ERR_UPSTREAM_UNAVAILABLE' && ex.attempts === 0 && ex.service !== null) this.upstreamError(this.serviceCell(ex.service), UNAVAILABLE)
    }
    const api = ex.api
    if (api === null) return
    if (ex.decidedBy !== null) {
      this.decision(api.name, ex.decidedBy, status >= 400 ? 'rejected' : 'answered').value++
      return
    }
    // Admitted by every request-phase policy that applied: known only once the request went on.
    const steps = api.chain.request
    if (steps === null || (ex.attempts === 0 && outcome !== 'GH_ERR_UPSTREAM_UNAVAILABLE')) return
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!
      if (s.rules !== null && !matchAny(s.rules, ex)) continue
      let a = this.admitted.get(s)
      if (a === undefined) { a = this.decision(api.name, s.name, 'admitted'); this.admitted.set(s, a) }
      a.value++
    }
  }

  private readonly onUpstreamEnd = (message: unknown): void => {
    const e = message as channels.UpstreamEvent
    const ex = e.ex
    // A failure after the client left is our own abort, not the upstream's.
    if (e.error !== null && ex.down.state === DownState.Aborted) return
    const c = this.serviceCell(ex.service)
    if (ex.upstreamStartedAt !== 0) c.duration.observe((ex.upstreamEndedAt - ex.upstreamStartedAt) / 1000)
    if (e.error !== null) {
      const kind = upstreamErrorKind(e.code)
      if (kind !== null) this.upstreamError(c, KINDS.indexOf(kind))
    } else if (e.statusCode >= 500) {
      this.upstreamError(c, STATUS_5XX)
    }
  }
}

let current: WorkerMetrics | null = null

/**
 * Turns recording on or off for this worker (each applied snapshot). The registry is
 * created on the first enable, so a worker that never has metrics on never loads them.
 */
export function configureWorkerMetrics(enabled: boolean, src: WorkerMetricSources): void {
  if (enabled && current === null) current = new WorkerMetrics(src)
  current?.setEnabled(enabled)
}

/** The registry as JSON for the primary's merge; [] while metrics were never on. */
export async function dumpWorkerMetrics(): Promise<MetricDump> {
  return current === null ? [] : await dumpRegistry(current.registry)
}
