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
export type ToWorker = SnapshotMsg | DrainMsg

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
}
export interface DrainedMsg {
  type: 'gh:drained'
  /** Requests still in flight when the worker gave up (0 = clean). */
  abandoned: number
}
export type ToPrimary = HelloMsg | AckMsg | HeartbeatMsg | DrainedMsg

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
