/**
 * Load shedding per worker (`Configuration.spec.overload`). A worker past either limit
 * answers new requests with a fast 503 `GH_ERR_OVERLOADED` (`Retry-After`,
 * `Connection: close`) instead of queueing them behind work it cannot finish in time:
 *
 * - **Requests in flight** above `maxRequestsInFlight` (the Exchanges counted in
 *   `WorkerState.inFlight`).
 * - **Event-loop lag** above `maxEventLoopLagMs`: one coarse timer fires every `TICK_MS`
 *   and takes how late it fired as the lag. A worker whose loop is that late reads every
 *   request that much later, so queueing more only makes every answer later.
 *
 * The request path pays one number comparison: the timer folds both states into
 * `admitLimit` (0 while the loop lags, else the in-flight cap), and `handle-request.ts`
 * sheds when `inFlight >= admitLimit`. Everything else (which reason, counting, logging)
 * happens on the shed path or in the timer. Shedding episodes are logged once when they
 * start and once when they end (after `QUIET_MS` without a cause), never per request.
 *
 * No connection cap: this uWS build has no connection open/close callbacks, so JS cannot
 * count or refuse connections. What bounds them is the in-flight cap (a connection
 * without a request in flight costs a socket and a few KB in uWS), uWS's fixed 10 s idle
 * timeout (an idle or slow-header connection is closed by uWS), and the file-descriptor
 * limit (`LimitNOFILE=` in packaging/common/gatehouse.service).
 *
 * The admin API (/live, /ready, /status, /metrics) is served by the primary, so it keeps
 * answering while a worker sheds or stalls.
 *
 * @module
 * @example
 *   const guard = new OverloadGuard(log)
 *   guard.configure({ maxRequestsInFlight: 10_000, maxEventLoopLagMs: 500 })   // each snapshot
 *   if (state.inFlight >= guard.admitLimit) { guard.onShed(); reject(down, 'GH_ERR_OVERLOADED', undefined, RETRY_AFTER) }
 */
import type { Logger } from '../telemetry/runtime-log.js'
import type { HeaderList } from './headers.js'

export type ShedReason = 'in_flight' | 'event_loop_lag'

/**
 * Lag sampling period. 20 wake-ups a second cost nothing measurable; the lag it reads is
 * exact to the timer's lateness, so a stall longer than the threshold plus one period is
 * always seen. Also the smallest accepted non-zero `maxEventLoopLagMs`.
 */
export const TICK_MS = 50

/**
 * An episode ends once its cause has been absent this long: a worker at the edge of a
 * limit then flips at most about once a second (and logs as often), not once per tick.
 * Retry-After says the same second to clients.
 */
export const QUIET_MS = 1000

/** Header list for the shed response, built once. */
export const RETRY_AFTER: HeaderList = ['retry-after', String(QUIET_MS / 1000)]

export interface OverloadSettings {
  /** 0 = no cap. */
  maxRequestsInFlight: number
  /** 0 = lag is not measured. */
  maxEventLoopLagMs: number
}

/** Monotonic shed counts since the worker started (read by the metrics at collect time). */
export interface ShedCounts {
  inFlight: number
  eventLoopLag: number
}

/** Starts a repeating timer; returns its stop function. Injectable for tests. */
export type Scheduler = (fn: () => void, everyMs: number) => () => void

const realScheduler: Scheduler = (fn, everyMs) => {
  const t = setInterval(fn, everyMs)
  // Never what keeps a draining worker alive.
  t.unref()
  return () => clearInterval(t)
}

export class OverloadGuard {
  /** The hot-path number: a request is shed when the worker's inFlight >= admitLimit. */
  admitLimit = Infinity
  /** True while a lag episode lasts (admitLimit is then 0). */
  lagging = false
  readonly shed: ShedCounts = { inFlight: 0, eventLoopLag: 0 }

  private maxInFlight = Infinity
  private maxLagMs = 0
  private stopTimer: (() => void) | null = null
  /** When the previous tick ran; 0 = no previous tick (the next one only starts the clock). */
  private lastTick = 0
  private lastLagAt = 0
  private lagSince = 0
  private lagPeakMs = 0
  private lagShedAtStart = 0
  private inFlightEpisode = false
  private inFlightSince = 0
  private inFlightShedAtStart = 0
  /** shed.inFlight as the last tick saw it, and since when it has not moved. */
  private inFlightSeen = 0
  private inFlightQuietSince = 0

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
    private readonly schedule: Scheduler = realScheduler,
  ) {}

  /** Applies the settings of a snapshot; idempotent, so every applied snapshot calls it. */
  configure(s: OverloadSettings): void {
    this.maxInFlight = s.maxRequestsInFlight === 0 ? Infinity : s.maxRequestsInFlight
    this.maxLagMs = s.maxEventLoopLagMs
    if (this.maxLagMs === 0 && this.lagging) this.endLag(this.now())
    if (this.maxInFlight === Infinity && this.inFlightEpisode) this.endInFlight(this.now())
    this.admitLimit = this.lagging ? 0 : this.maxInFlight
    // The timer measures lag and ends in-flight episodes; with both limits off it is not needed.
    const wanted = this.maxLagMs > 0 || this.maxInFlight !== Infinity
    if (wanted && this.stopTimer === null) {
      this.lastTick = 0
      this.stopTimer = this.schedule(() => this.tick(), TICK_MS)
    } else if (!wanted && this.stopTimer !== null) {
      this.stopTimer()
      this.stopTimer = null
    }
  }

  /** Stops the timer (tests; a worker simply exits). */
  close(): void {
    this.stopTimer?.()
    this.stopTimer = null
  }

  /** The shed path (never an admitted request): counts the request and returns why. */
  onShed(): ShedReason {
    if (this.lagging) { this.shed.eventLoopLag++; return 'event_loop_lag' }
    this.shed.inFlight++
    if (!this.inFlightEpisode) {
      const now = this.now()
      this.inFlightEpisode = true
      this.inFlightSince = now
      this.inFlightQuietSince = now
      this.inFlightShedAtStart = this.shed.inFlight - 1
      this.inFlightSeen = this.shed.inFlight
      this.log.warn('GH_WRN_SHEDDING_STARTED', `shedding new requests: ${this.maxInFlight} requests in flight (overload.maxRequestsInFlight)`,
        { reason: 'in_flight' })
    }
    return 'in_flight'
  }

  /** One timer firing: measures lag, starts or ends episodes. Public for tests. */
  tick(): void {
    const now = this.now()
    const lag = this.lastTick === 0 ? 0 : now - this.lastTick - TICK_MS
    this.lastTick = now
    if (this.maxLagMs > 0) {
      if (lag > this.maxLagMs) {
        this.lastLagAt = now
        if (lag > this.lagPeakMs) this.lagPeakMs = lag
        if (!this.lagging) {
          this.lagging = true
          this.admitLimit = 0
          this.lagSince = now
          this.lagPeakMs = lag
          this.lagShedAtStart = this.shed.eventLoopLag
          this.log.warn('GH_WRN_SHEDDING_STARTED', `shedding new requests: event loop ${Math.round(lag)} ms late (overload.maxEventLoopLagMs ${this.maxLagMs})`,
            { reason: 'event_loop_lag', lagMs: Math.round(lag) })
        }
      } else if (this.lagging && now - this.lastLagAt >= QUIET_MS) {
        this.endLag(now)
      }
    }
    if (this.inFlightEpisode) {
      if (this.shed.inFlight !== this.inFlightSeen) { this.inFlightSeen = this.shed.inFlight; this.inFlightQuietSince = now }
      else if (now - this.inFlightQuietSince >= QUIET_MS) this.endInFlight(now)
    }
  }

  private endLag(now: number): void {
    this.lagging = false
    this.admitLimit = this.maxInFlight
    this.log.warn('GH_WRN_SHEDDING_STOPPED', `no longer shedding for event-loop lag after ${Math.round(now - this.lagSince)} ms; ` +
      `${this.shed.eventLoopLag - this.lagShedAtStart} requests shed, peak lag ${Math.round(this.lagPeakMs)} ms`,
    { reason: 'event_loop_lag', shed: this.shed.eventLoopLag - this.lagShedAtStart, peakLagMs: Math.round(this.lagPeakMs) })
  }

  private endInFlight(now: number): void {
    this.inFlightEpisode = false
    this.log.warn('GH_WRN_SHEDDING_STOPPED', `no longer shedding for requests in flight after ${Math.round(now - this.inFlightSince)} ms; ` +
      `${this.shed.inFlight - this.inFlightShedAtStart} requests shed`,
    { reason: 'in_flight', shed: this.shed.inFlight - this.inFlightShedAtStart })
  }
}
