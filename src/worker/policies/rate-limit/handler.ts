/**
 * rate-limit: exact fixed-window limits shared by every worker of the host (embedded
 * store) or by every host (Redis), spent from local leases so a request almost never
 * waits on the store (see ./limiter.ts and src/ratelimit/lease.ts).
 *
 * When the shared store cannot answer within `maxWaitMs`, or its circuit breaker is
 * open, `onStoreFailure` decides: `local` counts in this host's embedded store (exact per
 * host; if that store is the one not answering, in this worker alone), `allow` lets the
 * request through, `deny` answers 503. A 429 or 503 that a fallback decided says so in
 * its problem `detail`.
 *
 * @module
 */
import type { PolicyModule, PolicyHandlers, LocalResponse, PolicyContext, RequestResult } from '../types.js'
import type { Exchange } from '../../exchange.js'
import { getHeader, type HeaderList } from '../../headers.js'
import { problem } from '../../local-response.js'
import type { LeaseClient } from '../../../ratelimit/lease.js'
import { schema, order, type RateLimitConfig } from './schema.js'
import { Verdict, WindowLimiter, WorkerCounter } from './limiter.js'

type KeyFn = (ex: Exchange) => string

function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const k = eq === -1 ? part : part.slice(0, eq)
    if (k === name) {
      try { return decodeURIComponent(eq === -1 ? '' : part.slice(eq + 1).replaceAll('+', ' ')) } catch { return part.slice(eq + 1) }
    }
  }
  return undefined
}

/** Builds the key function once; each part that is missing on a request counts as "-". */
function keyFunction(sel: RateLimitConfig['keySelector']): KeyFn {
  const s = sel ?? { clientIp: true }
  const parts: KeyFn[] = []
  if (s.clientIp) parts.push((ex) => ex.clientIp)
  if (s.header !== undefined) { const h = s.header.toLowerCase(); parts.push((ex) => String(getHeader(ex.headers, h) ?? '-')) }
  if (s.query !== undefined) { const q = s.query; parts.push((ex) => queryParam(ex.query, q) ?? '-') }
  if (s.consumer) parts.push((ex) => ex.consumer ?? '-')
  if (s.claim !== undefined) { const c = s.claim; parts.push((ex) => { const v = ex.claims?.[c]; return v === undefined ? '-' : String(v) }) }
  if (s.route) parts.push((ex) => ex.route?.id ?? '-')
  if (parts.length === 1) return parts[0]!
  return (ex) => parts.map((p) => p(ex)).join('|')
}

export const rateLimit: PolicyModule<RateLimitConfig> = {
  name: 'rate-limit',
  order,
  schema,
  create(config, ctx: PolicyContext): PolicyHandlers {
    const leases = ctx.services.leases
    if (leases === null) throw new Error('rate-limit needs the lease store, which this worker does not have')
    const client: LeaseClient = leases
    const keyOf = keyFunction(config.keySelector)
    const expose = config.exposeHeaders ?? true
    const onFailure = config.onStoreFailure ?? 'local'
    const maxWait = config.maxWaitMs ?? 20
    const clustered = config.clusterizable ?? true
    const shared = (): typeof client.shared => (clustered ? client.shared : client.local)
    const sharedIsLocal = (): boolean => !clustered || client.shared === client.local
    const windows = config.rateLimits.map((r) => ({
      shared: new WindowLimiter(r.maximumRequests, r.timePeriodInMilliseconds, `gh:rl:${ctx.id}:${r.timePeriodInMilliseconds}:`, shared, maxWait),
      // The host's embedded store, for onStoreFailure: local. Its own key space.
      local: new WindowLimiter(r.maximumRequests, r.timePeriodInMilliseconds, `gh:rl:local:${ctx.id}:${r.timePeriodInMilliseconds}:`, () => client.local, maxWait),
      worker: new WorkerCounter(r.maximumRequests, r.timePeriodInMilliseconds),
    }))
    const policyHeader = config.rateLimits.map((r) => `${r.maximumRequests};w=${Math.ceil(r.timePeriodInMilliseconds / 1000)}`).join(', ')

    /** RateLimit-* for the window with the fewest tokens left. */
    function headers(key: string, now: number, useLocal: boolean, denied: boolean): HeaderList {
      let best: { limit: number; remaining: number; resetMs: number } | null = null
      for (const w of windows) {
        const l = useLocal ? w.local : w.shared
        const st = l.status(key, now)
        if (best === null || st.remaining < best.remaining) best = { limit: l.limit, remaining: st.remaining, resetMs: st.resetMs }
      }
      const reset = String(Math.max(1, Math.ceil(best!.resetMs / 1000)))
      const h: HeaderList = ['ratelimit-limit', String(best!.limit), 'ratelimit-remaining', String(denied ? 0 : best!.remaining),
        'ratelimit-reset', reset, 'ratelimit-policy', policyHeader]
      if (denied) h.push('retry-after', reset)
      return h
    }

    function limited(ex: Exchange, key: string, viaFallback: boolean): LocalResponse {
      client.counters.limited++
      const now = Date.now()
      const h = expose ? headers(key, now, viaFallback, true) : null
      return problem('GH_ERR_RATE_LIMITED', viaFallback ? 'decided by the local fallback: shared storage unavailable' : undefined, h)
    }

    function admitted(ex: Exchange, key: string, viaFallback: boolean): undefined {
      client.counters.admitted++
      if (expose) ex.extraResponseHeaders = headers(key, Date.now(), viaFallback, false)
      return undefined
    }

    /** Combines per-window verdicts; Deny wins, then Fallback. */
    function combine(vs: Verdict[]): Verdict {
      let out = Verdict.Allow
      for (const v of vs) { if (v === Verdict.Deny) return Verdict.Deny; if (v === Verdict.Fallback) out = Verdict.Fallback }
      return out
    }

    function takeAll(which: 'shared' | 'local', key: string, now: number): Verdict | Promise<Verdict> {
      if (windows.length === 1) return windows[0]![which].take(key, now)
      const vs = windows.map((w) => w[which].take(key, now))
      if (vs.every((v) => typeof v === 'number')) return combine(vs as Verdict[])
      return Promise.all(vs).then(combine)
    }

    /** Counting in this worker alone: when no store answers at all. */
    function lastResort(ex: Exchange, key: string): RequestResult {
      const now = Date.now()
      let v = Verdict.Allow
      for (const w of windows) if (w.worker.take(key, now) === Verdict.Deny) v = Verdict.Deny
      return v === Verdict.Deny ? limited(ex, key, true) : admitted(ex, key, true)
    }

    function fallback(ex: Exchange, key: string): RequestResult | Promise<RequestResult> {
      client.counters.fallbacks++
      if (onFailure === 'allow') return admitted(ex, key, true)
      if (onFailure === 'deny') return problem('GH_ERR_RATE_LIMIT_STORE', 'rate limit not checked: shared storage unavailable (onStoreFailure: deny)')
      // local: the host's embedded store, unless that is the store that failed.
      if (sharedIsLocal()) return lastResort(ex, key)
      const v = takeAll('local', key, Date.now())
      const decide = (r: Verdict): RequestResult => (r === Verdict.Deny ? limited(ex, key, true) : r === Verdict.Fallback ? lastResort(ex, key) : admitted(ex, key, true))
      return typeof v === 'number' ? decide(v) : v.then(decide)
    }

    function decide(ex: Exchange, key: string, v: Verdict): RequestResult | Promise<RequestResult> {
      if (v === Verdict.Allow) return admitted(ex, key, false)
      if (v === Verdict.Deny) return limited(ex, key, false)
      return fallback(ex, key)
    }

    return {
      request: function rateLimitRequest(ex: Exchange) {
        const key = keyOf(ex)
        // With the store's breaker open, its acquire rejects at once (no wait) and the
        // fallback decides; going through it anyway lets the breaker's probe happen.
        const v = takeAll('shared', key, Date.now())
        if (typeof v === 'number') return decide(ex, key, v)
        return v.then((r) => decide(ex, key, r))
      },
      response: null,
    }
  },
}
