/**
 * THE primary ⇄ worker message set. Both sides import only from here.
 *
 * Every message is a plain object with a `type` starting with "gh:". The channel is
 * shared with other libraries (prom-client sends "prom-client:*" on the same
 * process.on('message')), so `isGhMessage` must be checked first and anything else
 * ignored.
 *
 * @module
 */
import type { Snapshot } from '../config/snapshot.js'

// ── primary → worker ─────────────────────────────────────────────────────────────
export interface SnapshotMsg {
  type: 'gh:snapshot'
  requestId: number
  snapshot: Snapshot
}
export interface DrainMsg {
  type: 'gh:drain'
  /** Milliseconds the worker has to finish in-flight requests before it exits anyway. */
  timeoutMs: number
}
/** The embedded rate-limit store's answer to a LeaseMsg. */
export interface GrantMsg {
  type: 'gh:grant'
  requestId: number
  granted: number
  window: number
  resetMs: number
  remaining: number
}
/** The primary collects a scrape: the worker answers with a MetricsMsg of the same id. */
export interface CollectMsg {
  type: 'gh:collect'
  requestId: number
}
/** SIGUSR1 reached the primary: reopen the log files (logrotate moved them). */
export interface ReopenLogsMsg {
  type: 'gh:reopen-logs'
}
export type ToWorker = SnapshotMsg | DrainMsg | GrantMsg | CollectMsg | ReopenLogsMsg

// ── worker → primary ─────────────────────────────────────────────────────────────
/**
 * First message of a worker, sent once its listeners are attached. cluster's 'online'
 * fires before an ESM entry has loaded, and messages sent before the worker listens are
 * lost, so the primary waits for this instead.
 */
export interface HelloMsg {
  type: 'gh:hello'
  pid: number
}
export interface AckMsg {
  type: 'gh:ack'
  requestId: number
  version: string
  ok: boolean
  /** Present when ok is false. */
  error?: string
}
export interface HeartbeatMsg {
  type: 'gh:heartbeat'
  version: string | null
  inFlight: number
  /** Dependencies the worker is serving without ("shared storage"); empty when healthy. */
  degraded?: string[]
  /** Rate-limit store counters since the worker started. */
  rateLimit?: { storeCalls: number; storeErrors: number; fallbacks: number; admitted: number; limited: number }
}
/** A worker asks the primary's embedded rate-limit store for a lease. */
export interface LeaseMsg {
  type: 'gh:lease'
  requestId: number
  key: string
  limit: number
  windowMs: number
  want: number
  need: number
}
export interface DrainedMsg {
  type: 'gh:drained'
  /** Requests still in flight when the worker gave up (0 = clean). */
  abandoned: number
}
/** A worker gives unspent tokens of a window back to the embedded store. */
export interface ReleaseMsg {
  type: 'gh:release'
  key: string
  window: number
  count: number
}
/** A worker's prom-client registry as `getMetricsAsJSON()` gives it ([] when metrics are off). */
export interface MetricsMsg {
  type: 'gh:metrics'
  requestId: number
  metrics: unknown[]
}
export type ToPrimary = HelloMsg | AckMsg | HeartbeatMsg | DrainedMsg | LeaseMsg | ReleaseMsg | MetricsMsg

export type GhMessage = ToWorker | ToPrimary

export function isGhMessage(m: unknown): m is GhMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' &&
    (m as { type: string }).type.startsWith('gh:')
}

let nextRequestId = 1
export function newRequestId(): number {
  const id = nextRequestId
  nextRequestId = nextRequestId >= 0x7fffffff ? 1 : nextRequestId + 1
  return id
}
