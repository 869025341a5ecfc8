/**
 * Rate-limit leases, shared by the stores (embedded in the primary, Redis) and the worker.
 *
 * A worker does not ask the store for every request. It asks for a lease: up to `want`
 * tokens of one key's fixed window. The store grants at most what remains, and less the
 * less remains (`grantSize`), so tokens held by workers but not yet spent stay few: the
 * cluster never admits more than the limit (the store never grants more than it has) and
 * rarely admits less (little is stranded in idle leases when the window ends).
 *
 * Windows are fixed and aligned to the epoch by the store's clock: window k covers
 * [k·windowMs, (k+1)·windowMs). A client can therefore get up to 2× the limit across a
 * boundary (the end of one window and the start of the next): the edge burst every
 * fixed-window limiter has, documented for operators.
 *
 * @module
 */

export interface LeaseRequest {
  /** Full store key, unique per policy, selector value and window size. */
  key: string
  limit: number
  windowMs: number
  /** Tokens the worker would like; the store may grant fewer. */
  want: number
  /**
   * Of `want`, the requests already waiting in the worker. These are granted whole (up to
   * what remains): they are spent at once, so granting them strands nothing.
   */
  need: number
}

export interface LeaseGrant {
  /** Tokens granted for the current window (0 = the window's budget is spent). */
  granted: number
  /** Index of the window the grant belongs to (store clock). */
  window: number
  /** Milliseconds until that window ends (store clock). */
  resetMs: number
  /** Tokens left in the store for this window after this grant. */
  remaining: number
}

/** Where a worker gets leases. Implementations: embedded (IPC to the primary), Redis. */
export interface LeaseStore {
  readonly name: 'embedded' | 'redis'
  acquire(req: LeaseRequest): Promise<LeaseGrant>
  /**
   * A caller gave up waiting for a grant (maxWaitMs passed). Counts as a failure for the
   * store's circuit breaker, so an unresponsive store (e.g. a stopped Redis, whose
   * connection stays open) is bypassed after a few slow calls, not after command timeouts.
   */
  reportSlow(): void
  /**
   * Gives back `count` unspent tokens of `window` (a worker's lease went idle), so other
   * workers can use them. Best effort: a lost release only means fewer admissions.
   */
  release(key: string, window: number, count: number): void
}

/** What the rate-limit policy uses: the shared store, with the host's embedded store as `local`. */
export interface LeaseClient {
  /** Redis when configured, else the embedded store. */
  readonly shared: LeaseStore
  /** The embedded per-host store (exact across this host's workers). */
  readonly local: LeaseStore
  /** True while the shared store's circuit breaker is open. */
  readonly degraded: boolean
  /** Policy outcome counters, reported in heartbeats. */
  readonly counters: { fallbacks: number; admitted: number; limited: number }
}

/**
 * How many of the `remaining` tokens one request for `want` gets: never more than is
 * left; the `need` of requests already waiting in full; beyond that at most
 * 1/GRANT_DIVISOR of what is left (but at least 1), so tokens a worker holds ahead of its
 * requests are few when the window's budget runs low. Far from the limit a grant is large (a
 * limit of 10 000 grants hundreds per call); the Redis script computes the same rule.
 */
export const GRANT_DIVISOR = 16

export function grantSize(remaining: number, want: number, need: number): number {
  if (remaining <= 0 || want <= 0) return 0
  return Math.min(remaining, Math.max(need, Math.min(want, Math.max(1, Math.floor(remaining / GRANT_DIVISOR)))))
}

/** Window index and time to its end for a store clock reading. */
export function windowOf(nowMs: number, windowMs: number): { window: number; resetMs: number } {
  const window = Math.floor(nowMs / windowMs)
  return { window, resetMs: (window + 1) * windowMs - nowMs }
}
