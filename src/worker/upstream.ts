/**
 * Upstream services: one undici Pool per endpoint (keep-alive), weighted load balancing,
 * passive ejection and active health checks, and the single place where undici failures
 * become Gatehouse error codes.
 *
 * Pools and health state outlive a snapshot: a reload that keeps an endpoint keeps its
 * connections and its ejection state (`UpstreamRegistry`). Endpoints that disappear are
 * closed gracefully (undici lets in-flight requests finish).
 *
 * @module
 */
import { Pool } from 'undici'
import type { EndpointSnap, ServiceSnap } from '../config/snapshot.js'
import type { ErrorCode } from '../errors.js'

export class Endpoint {
  readonly key: string
  readonly origin: string
  readonly pathPrefix: string
  weight: number
  readonly pool: Pool
  /** Requests in flight from this worker (least-request). */
  active = 0
  /** Smooth weighted round-robin state (nginx's algorithm). */
  current = 0
  consecutiveFailures = 0
  ejections = 0
  ejectedUntil = 0
  /** Active health: false after `unhealthyThreshold` failed checks. */
  healthy = true
  private hcStreak = 0
  private hcTimer: NodeJS.Timeout | null = null

  constructor(key: string, ep: EndpointSnap, svc: ServiceSnap) {
    this.key = key
    this.origin = ep.origin
    this.pathPrefix = ep.pathPrefix
    this.weight = ep.weight
    this.pool = new Pool(ep.origin, {
      connections: svc.connectionsPerEndpoint,
      keepAliveTimeout: svc.keepAliveTimeoutMs,
      connectTimeout: svc.connectTimeoutMs,
      headersTimeout: svc.responseTimeoutMs,
      bodyTimeout: svc.responseTimeoutMs,
      pipelining: 1,
    })
  }

  available(now: number): boolean {
    return this.healthy && now >= this.ejectedUntil
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0
  }

  /** Passive health: N consecutive gateway failures eject for base·2^(k-1), capped. */
  recordFailure(svc: ServiceSnap, now: number): void {
    const p = svc.passiveHealth
    if (p.consecutiveFailures === 0) return
    if (++this.consecutiveFailures < p.consecutiveFailures) return
    this.consecutiveFailures = 0
    this.ejections++
    this.ejectedUntil = now + Math.min(p.baseEjectionMs * 2 ** (this.ejections - 1), p.maxEjectionMs)
  }

  startActiveChecks(svc: ServiceSnap): void {
    const hc = svc.activeHealth
    if (hc === null || this.hcTimer !== null) return
    const check = (): void => {
      this.pool.request({ path: this.pathPrefix + hc.path, method: 'GET', headersTimeout: hc.timeoutMs, bodyTimeout: hc.timeoutMs })
        .then(async (r) => {
          await r.body.dump()
          this.hcResult(r.statusCode >= hc.expectedStatus[0] && r.statusCode <= hc.expectedStatus[1], svc)
        }, () => this.hcResult(false, svc))
    }
    this.hcTimer = setInterval(check, hc.intervalMs)
    this.hcTimer.unref()
    check()
  }

  private hcResult(ok: boolean, svc: ServiceSnap): void {
    const hc = svc.activeHealth
    if (hc === null) return
    if (ok === this.healthy) { this.hcStreak = 0; return }
    this.hcStreak++
    if (this.hcStreak >= (ok ? hc.healthyThreshold : hc.unhealthyThreshold)) {
      this.healthy = ok
      this.hcStreak = 0
      if (ok) { this.ejectedUntil = 0; this.consecutiveFailures = 0 }
    }
  }

  close(): void {
    if (this.hcTimer !== null) clearInterval(this.hcTimer)
    this.hcTimer = null
    this.pool.close().catch(() => {})
  }
}

export class ServiceRuntime {
  private rrNext = 0
  constructor(readonly snap: ServiceSnap, readonly endpoints: Endpoint[]) {}

  /** Picks an endpoint, skipping `exclude` (the one that just failed). Null = none healthy. */
  pick(exclude: Endpoint | null): Endpoint | null {
    const eps = this.endpoints
    const now = Date.now()
    if (this.snap.loadBalancing === 'least-request') {
      let best: Endpoint | null = null
      let bestScore = Infinity
      // Rotating start so ties (the idle case) spread instead of piling on endpoint 0.
      const n = eps.length
      const start = this.rrNext++ % n
      for (let k = 0; k < n; k++) {
        const e = eps[(start + k) % n]!
        if (e === exclude || !e.available(now)) continue
        const score = (e.active + 1) / e.weight
        if (score < bestScore) { bestScore = score; best = e }
      }
      return best
    }
    let total = 0
    let best: Endpoint | null = null
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!
      if (e === exclude || !e.available(now)) continue
      e.current += e.weight
      total += e.weight
      if (best === null || e.current > best.current) best = e
    }
    if (best !== null) best.current -= total
    return best
  }
}

/** Keeps endpoints (pools + health) alive across snapshots when their definition is unchanged. */
export class UpstreamRegistry {
  private endpoints = new Map<string, Endpoint>()

  /** Builds the services of a snapshot, reusing endpoints, and closes the ones left over. */
  build(services: Record<string, ServiceSnap>): Map<string, ServiceRuntime> {
    const next = new Map<string, Endpoint>()
    const out = new Map<string, ServiceRuntime>()
    for (const svc of Object.values(services)) {
      const eps: Endpoint[] = []
      for (const ep of svc.endpoints) {
        // Pool options are part of the key: a changed timeout means a new pool.
        const key = `${svc.name}|${ep.origin}|${svc.connectTimeoutMs}|${svc.responseTimeoutMs}|${svc.keepAliveTimeoutMs}|${svc.connectionsPerEndpoint}|${ep.pathPrefix}`
        let e = next.get(key) ?? this.endpoints.get(key)
        if (e === undefined) e = new Endpoint(key, ep, svc)
        e.weight = ep.weight
        next.set(key, e)
        eps.push(e)
        e.startActiveChecks(svc)
      }
      out.set(svc.name, new ServiceRuntime(svc, eps))
    }
    for (const [key, e] of this.endpoints) if (!next.has(key)) e.close()
    this.endpoints = next
    return out
  }

  closeAll(): Promise<void> {
    const all = [...this.endpoints.values()]
    this.endpoints.clear()
    return Promise.all(all.map((e) => e.pool.close().catch(() => {}))).then(() => {})
  }
}

/** Connect-phase failures: the request was never sent, so another endpoint may be tried. */
export function isConnectFailure(err: { code?: string }): boolean {
  const c = err.code
  return c === 'ECONNREFUSED' || c === 'UND_ERR_CONNECT_TIMEOUT' || c === 'EHOSTUNREACH' ||
    c === 'ENETUNREACH' || c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EADDRNOTAVAIL'
}

/** The one mapping from undici/socket failures to Gatehouse codes (STYLE.md §2.3). */
export function upstreamErrorCode(err: { code?: string }): ErrorCode {
  switch (err.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return 'GH_ERR_UPSTREAM_REFUSED'
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT'
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'GH_ERR_UPSTREAM_TIMEOUT'
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return 'GH_ERR_UPSTREAM_RESET'
    default:
      return 'GH_ERR_UPSTREAM_PROTOCOL'
  }
}
