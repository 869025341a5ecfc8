/**
 * Client deadlines the worker enforces itself, with one coarse sweep timer (undici's
 * lib/util/timers.js idea) instead of a timer per request:
 *
 * - body idle: a request body that makes no progress for `bodyIdleTimeoutMs` while the
 *   gateway is reading it gets 408 GH_ERR_REQUEST_TIMEOUT (or a close when the response
 *   already started), the connection is closed and the upstream request cancelled. Time
 *   the gateway itself paused the client (upstream backpressure) does not count.
 * - send: a response that cannot be written for `sendTimeoutMs` (the client stopped
 *   reading) is dropped: the connection is closed, which cancels the upstream request.
 *   A client that reads slowly but steadily is served however long it takes: uWS's own
 *   timer, which would cut any response draining slower than ~16 KiB/s after ~10 s, is
 *   re-armed the same way as for bodies.
 *
 * The pinned uWS build has a fixed ~10 s socket timer (4 s resolution) of its own that it
 * arms when a request starts and re-arms only for bodies faster than ~16 KiB/s, so a
 * slower upload longer than that was cut without an answer (docs/uws-parser-findings.md
 * §17). uWS re-arms it in `resume()` and disarms it in `pause()`; the sweep calls that pair
 * for every body still within its idle allowance, so the idle decision is ours and comes
 * with a 408.
 *
 * What JS cannot see at all (no connection events in this uWS build) stays uWS's: a
 * request head that does not complete, and an idle keep-alive connection, are closed by
 * that same timer 8–12 s after the connection's last request, without a response.
 *
 * Per request: nothing unless the request has a body or its response hits backpressure;
 * then a Set add, and a performance.now() per body chunk or writable event (exact stamps:
 * a stamp one sweep stale would cut a client up to SWEEP_MS early).
 *
 * @module
 */
import type { Downstream } from './downstream.js'

/** What the sweep needs of a request body being read (RequestBody implements it). */
export interface WatchedBody {
  /** performance.now() when the last bytes arrived (or reading started). */
  lastDataAt: number
  /** The whole body arrived, or the exchange ended: stop watching. */
  readonly settled: boolean
  /** The gateway paused the client itself (upstream backpressure): the client is not idle. */
  readonly pausedByUs: boolean
  readonly idleTimeoutMs: number
  /** Re-arms uWS's own socket timer (pause + resume). */
  refreshSocketTimer(): void
  /** Idle too long: answer 408 / close and cancel the upstream. */
  timedOut(): void
}

/** How often the sweep runs: the precision of every deadline here. */
const SWEEP_MS = 250
/** Re-arm uWS's timer this often per watched body (it fires 8–12 s after arming). */
const REFRESH_MS = 2000

/** performance.now() as of the last sweep or watch(). */
let coarseNow = performance.now()

const bodies = new Set<WatchedBody>()
const refreshedAt = new WeakMap<object, number>()
const sends = new Set<Downstream>()
let timer: NodeJS.Timeout | null = null

function arm(): void {
  coarseNow = performance.now()
  if (timer === null) timer = setInterval(sweep, SWEEP_MS).unref()
}

export function watchBody(b: WatchedBody): void {
  arm()
  b.lastDataAt = coarseNow
  refreshedAt.set(b, coarseNow)
  bodies.add(b)
}

/** A response hit backpressure: watch it until it drains or ends (Downstream.stalledSince). */
export function watchSend(d: Downstream): void {
  arm()
  d.stalledSince = coarseNow
  if (!sends.has(d)) refreshedAt.set(d, coarseNow)
  sends.add(d)
}

function sweep(): void {
  const now = coarseNow = performance.now()
  for (const b of bodies) {
    if (b.settled) { bodies.delete(b); continue }
    if (b.pausedByUs) { b.lastDataAt = now; continue } // uWS's timer is disarmed while paused
    if (now - b.lastDataAt >= b.idleTimeoutMs) { bodies.delete(b); b.timedOut(); continue }
    if (now - (refreshedAt.get(b) ?? 0) >= REFRESH_MS) { refreshedAt.set(b, now); b.refreshSocketTimer() }
  }
  for (const d of sends) {
    if (!d.live) { sends.delete(d); continue }
    if (d.stalledSince === 0) { sends.delete(d); continue }
    if (now - d.stalledSince >= d.sendTimeoutMs) { sends.delete(d); d.abort(); continue }
    if (now - (refreshedAt.get(d) ?? 0) >= REFRESH_MS) { refreshedAt.set(d, now); d.refreshSocketTimer() }
  }
  if (bodies.size === 0 && sends.size === 0 && timer !== null) { clearInterval(timer); timer = null }
}
