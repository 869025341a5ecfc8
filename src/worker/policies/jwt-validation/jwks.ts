/**
 * The JWKS of one identity provider, as one worker sees it. jose's `createRemoteJWKSet`
 * is not used because its rules are not ours: we need stale keys served while the IdP
 * is down, one request per `minRefetchIntervalMs` whatever triggers it, and a 503 (not a
 * 401) when no key was ever fetched. jose still does all the key work: each fetched set
 * becomes a `createLocalJWKSet` (which selects by kid/kty/alg/crv and imports lazily).
 *
 * Rules:
 * - Fresh keys (younger than `ttlMs`) are used as they are.
 * - Stale keys are used as they are, and a refresh starts in the background (if the rate
 *   allows); a failed refresh keeps them. They are never dropped for being old.
 * - A token whose `kid` is not in the set waits for a refetch when the rate allows one,
 *   else it is checked against the keys at hand (and fails as an unknown key).
 * - Concurrent callers share the one fetch in flight.
 * - Nothing fetched yet and the IdP unreachable: `JwksUnavailable` (→ 503), fast while
 *   the rate forbids a new attempt.
 *
 * @module
 */
import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose'
import { idpJson } from '../../auth/idp-http.js'

export class JwksUnavailable extends Error {
  readonly code = 'JWKS_UNAVAILABLE'
}

export interface JwksOptions {
  ttlMs: number
  minRefetchIntervalMs: number
  timeoutMs: number
  /** Keys configured locally (publicKeys), merged into every fetched set. */
  extraKeys: readonly JWK[]
  /** Called on each failed fetch (the rate bounds how often). */
  onError: (err: Error) => void
  /** Clock, for tests. */
  now?: () => number
}

const MAX_JWKS_BYTES = 1 << 20

export class JwksCache {
  private keySet: JWTVerifyGetKey | null = null
  private kids: ReadonlySet<string> = new Set()
  private fetchedAt = 0
  /** Start of the last fetch attempt, successful or not. */
  private attemptedAt = Number.NEGATIVE_INFINITY
  private lastFailed = false
  private inflight: Promise<void> | null = null
  /** Number of JWKS requests sent (tests and metrics). */
  fetches = 0
  private readonly now: () => number

  constructor(readonly url: string, private readonly opts: JwksOptions) {
    this.now = opts.now ?? Date.now
  }

  /** The key set to verify a token with this `kid` against; waits only when it must. */
  async keysFor(kid: string | undefined): Promise<JWTVerifyGetKey> {
    const now = this.now()
    if (this.keySet === null) {
      const f = this.fetchIfAllowed(now)
      if (f === null) throw new JwksUnavailable('no JWKS fetched yet and the last attempt failed')
      await f
      if (this.keySet === null) throw new JwksUnavailable('JWKS unavailable')
      return this.keySet
    }
    if (kid !== undefined && !this.kids.has(kid)) {
      // Rotation: a new kid may have appeared. Bounded by the refetch rate.
      const f = this.fetchIfAllowed(now)
      if (f !== null) await f
      if (!this.kids.has(kid) && this.lastFailed) throw new JwksUnavailable('unknown kid and the JWKS cannot be refreshed')
      return this.keySet
    }
    if (now - this.fetchedAt >= this.opts.ttlMs) void this.fetchIfAllowed(now)
    return this.keySet
  }

  /** The fetch in flight, a new one if the rate allows, or null. */
  private fetchIfAllowed(now: number): Promise<void> | null {
    if (this.inflight !== null) return this.inflight
    if (now - this.attemptedAt < this.opts.minRefetchIntervalMs) return null
    this.attemptedAt = now
    this.fetches++
    this.inflight = this.fetch().finally(() => { this.inflight = null })
    return this.inflight
  }

  private async fetch(): Promise<void> {
    try {
      const doc = await idpJson(this.url, {
        method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' },
        timeoutMs: this.opts.timeoutMs, maxBytes: MAX_JWKS_BYTES,
      })
      const keys = (doc as { keys?: unknown } | null)?.keys
      if (!Array.isArray(keys)) throw new Error('JWKS document has no "keys" list')
      const all = [...this.opts.extraKeys, ...(keys as JWK[])]
      // Throws on a malformed set: the old keys stay.
      this.keySet = createLocalJWKSet({ keys: all })
      const kids = new Set<string>()
      for (const k of all) if (typeof k.kid === 'string') kids.add(k.kid)
      this.kids = kids
      this.fetchedAt = this.now()
      this.lastFailed = false
    } catch (err) {
      this.lastFailed = true
      this.opts.onError(err as Error)
    }
  }
}
