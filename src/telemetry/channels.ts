/**
 * The telemetry seam: diagnostics_channel channels the worker publishes to at the points
 * of an exchange's life. Metrics, traces and the access log subscribe here; the request
 * path only calls `publish` behind `hasSubscribers`, so with telemetry off it pays one
 * boolean check per point (undici's lib/core/diagnostics.js does the same).
 *
 * Messages are the Exchange itself, or for upstream points the attempt object (which
 * carries its Exchange, endpoint and outcome): nothing is allocated to publish.
 * Subscribers read fields, change none (except as noted) and keep nothing past `requestEnd`.
 * The Exchange's timing fields (upstreamStartedAt, ...) are stamped whenever `requestEnd`
 * has subscribers, since every consumer of timings reads them there.
 * `requestStart` subscribers run synchronously before the request phase and may add
 * upstream headers (trace context) to `ex.headers`.
 *
 * @module
 */
import dc from 'node:diagnostics_channel'
import type { Exchange } from '../worker/exchange.js'
import type { Endpoint } from '../worker/upstream.js'

export interface UpstreamEvent {
  readonly ex: Exchange
  readonly endpoint: Endpoint
  /** Status of the upstream response (upstreamHeaders), 0 before. */
  readonly statusCode: number
  /** Failure of the attempt (upstreamEnd), null on success. */
  readonly error: (Error & { code?: string }) | null
  /** Gatehouse code for `error` (GH_ERR_UPSTREAM_*), null on success. */
  readonly code: string | null
}

/** A routed request, before its request phase. Message: Exchange. */
export const requestStart = dc.channel('gatehouse:request:start')
/** An upstream attempt is dispatched. Message: UpstreamEvent. */
export const upstreamStart = dc.channel('gatehouse:upstream:start')
/** The upstream answered with headers. Message: UpstreamEvent. */
export const upstreamHeaders = dc.channel('gatehouse:upstream:headers')
/** An upstream attempt ended (complete or failed). Message: UpstreamEvent. */
export const upstreamEnd = dc.channel('gatehouse:upstream:end')
/** The exchange ended, however it ended (also unrouted and rejected requests). Message: Exchange. */
export const requestEnd = dc.channel('gatehouse:request:end')
