/**
 * Upstream services: one connection pool per endpoint (keep-alive; our own HTTP/1.1 client
 * for http://, undici for https://), weighted load balancing,
 * passive ejection and active health checks, and the single place where upstream failures
 * (undici's codes, which the own client reuses) become Gatehouse error codes.
 *
 * Pools and health state outlive a snapshot: a reload that keeps an endpoint keeps its
 * connections and its ejection state (`UpstreamRegistry`). Endpoints that disappear are
 * closed gracefully (undici lets in-flight requests finish).
 *
 * @module
 */
import { Pool, errors as undiciErrors } from 'undici'
import type { ActiveHealthSnap, EndpointSnap, ServiceSnap } from '../config/snapshot.js'
import type { ErrorCode } from '../errors.js'
import { H1Pool } from './upstream-client/pool.js'
import { probe } from './upstream-client/probe.js'
import type { UpstreamPool } from './upstream-client/dispatch.js'

export class Endpoint {
  readonly key: string
  readonly origin: string
  readonly pathPrefix: string
  weight: number
  readonly pool: UpstreamPool
  /** Requests in flight from this worker (least-request). */
  active = 0
  /** Connections held paused because their client lags behind full buffers (proxy.ts). */
  pausedByClients = 0
  /** Half the pool: the rest stays for everyone else. */
  readonly maxPausedByClients: number
  /** Smooth weighted round-robin state (nginx's algorithm). */
  current = 0
  consecutiveFailures = 0
  ejections = 0
  ejectedUntil = 0
  /** Active health: false after `unhealthyThreshold` failed checks. */
  healthy = true
  private hcStreak = 0
  private hcTimer: NodeJS.Timeout | null = null
  /** The active-check settings the timer runs with ('' = none). */
  private hcKey = ''
  private hcRunning = false

  constructor(key: string, ep: EndpointSnap, svc: ServiceSnap) {
    this.key = key
    this.origin = ep.origin
    this.pathPrefix = ep.pathPrefix
    this.weight = ep.weight
    this.maxPausedByClients = Math.ceil(svc.connectionsPerEndpoint / 2)
    const opts = {
      connections: svc.connectionsPerEndpoint,
      keepAliveTimeout: svc.keepAliveTimeoutMs,
      connectTimeout: svc.connectTimeoutMs,
      headersTimeout: svc.responseTimeoutMs,
      bodyTimeout: svc.responseTimeoutMs,
      // Beyond → UND_ERR_HEADERS_OVERFLOW, the connection is dropped.
      maxHeaderSize: svc.maxResponseHeaderBytes,
    }
    // TLS to upstreams is rare and not on the path the benchmarks measure: undici keeps it.
    // The cast: undici types headers as its own unions; the flat [name, value] list we pass
    // is one of the shapes it accepts at runtime (lib/core/request.js).
    this.pool = ep.origin.startsWith('https:') ? new Pool(ep.origin, { ...opts, pipelining: 1 }) as unknown as UpstreamPool : new H1Pool(ep.origin, opts)
  }

  available(now: number): boolean {
    return this.healthy && now >= this.ejectedUntil
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0
  }

  /**
   * Passive health: N consecutive gateway failures eject for base·2^(k-1), capped. The
   * multiplier k starts over once the endpoint has stayed in (not ejected) for longer than
   * `maxEjectionMs` since its last ejection ended, so an endpoint that failed once last
   * week is not ejected for the maximum today (Envoy decays its multiplier the same way).
   */
  recordFailure(svc: ServiceSnap, now: number): void {
    const p = svc.passiveHealth
    if (p.consecutiveFailures === 0) return
    if (++this.consecutiveFailures < p.consecutiveFailures) return
    this.consecutiveFailures = 0
    if (this.ejections > 0 && now - this.ejectedUntil > p.maxEjectionMs) this.ejections = 0
    this.ejections++
    this.ejectedUntil = now + Math.min(p.baseEjectionMs * 2 ** (this.ejections - 1), p.maxEjectionMs)
  }

  /** Passive health for a failed attempt: counts only failures that are the endpoint's. */
  recordError(svc: ServiceSnap, code: ErrorCode, now: number): void {
    if (isEndpointFailure(code)) this.recordFailure(svc, now)
  }

  /**
   * (Re)starts active checks for the service's current settings. Called on every snapshot:
   * the endpoint (and its pool) survives a reload whose pool options did not change, but
   * its health-check settings may have; without checks, an endpoint that a check had
   * marked down would never come back, so it is marked up again.
   */
  configureActiveChecks(svc: ServiceSnap): void {
    const hc = svc.activeHealth
    const key = hc === null ? '' : JSON.stringify(hc)
    if (key === this.hcKey) return
    this.hcKey = key
    if (this.hcTimer !== null) clearInterval(this.hcTimer)
    this.hcTimer = null
    this.hcStreak = 0
    this.hcRunning = false
    if (hc === null) { this.healthy = true; return }
    const check = (): void => {
      // A check still running (connect time comes on top of timeoutMs) is not doubled up.
      if (this.hcRunning) return
      this.hcRunning = true
      probe(this.pool, this.pathPrefix + hc.path, hc.timeoutMs)
        .then((status) => status >= hc.expectedStatus[0] && status <= hc.expectedStatus[1])
        .catch(() => false)
        .then((ok) => {
          this.hcRunning = false
          // A result from settings replaced meanwhile does not count.
          if (this.hcKey === key) this.hcResult(ok, hc)
        })
    }
    this.hcTimer = setInterval(check, hc.intervalMs)
    this.hcTimer.unref()
    check()
  }

  private hcResult(ok: boolean, hc: ActiveHealthSnap): void {
    if (ok === this.healthy) { this.hcStreak = 0; return }
    this.hcStreak++
    if (this.hcStreak >= (ok ? hc.healthyThreshold : hc.unhealthyThreshold)) {
      this.healthy = ok
      this.hcStreak = 0
      if (ok) { this.ejectedUntil = 0; this.consecutiveFailures = 0 }
    }
  }

  /** Stops checks and closes the pool gracefully (in-flight requests finish). */
  close(): Promise<void> {
    if (this.hcTimer !== null) clearInterval(this.hcTimer)
    this.hcTimer = null
    this.hcKey = 'closed'
    return this.pool.close().catch(() => {})
  }
}

export class ServiceRuntime {
  private rrNext = 0
  constructor(readonly snap: ServiceSnap, readonly endpoints: Endpoint[]) {}

  /** Picks an endpoint, skipping `exclude` (those a retry already tried). Null = none healthy. */
  pick(exclude: readonly Endpoint[] | null): Endpoint | null {
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
        if (!e.available(now) || (exclude !== null && exclude.includes(e))) continue
        const score = (e.active + 1) / e.weight
        if (score < bestScore) { bestScore = score; best = e }
      }
      return best
    }
    let total = 0
    let best: Endpoint | null = null
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!
      if (!e.available(now) || (exclude !== null && exclude.includes(e))) continue
      e.current += e.weight
      total += e.weight
      if (best === null || e.current > best.current) best = e
    }
    if (best !== null) best.current -= total
    return best
  }
}

export interface PreparedUpstreams {
  services: Map<string, ServiceRuntime>
  commit(): void
  discard(): void
}

/** Keeps endpoints (pools + health) alive across snapshots when their definition is unchanged. */
export class UpstreamRegistry {
  private endpoints = new Map<string, Endpoint>()

  /** Builds the services of a snapshot, reusing endpoints, and closes the ones left over. */
  /**
   * Builds the services of a snapshot, reusing endpoints, without touching the live ones:
   * the snapshot may still be rejected (a listener that cannot bind). `commit` makes it
   * the registry's state (health checks follow the new settings, dropped endpoints close);
   * `discard` closes only what this build created.
   */
  prepare(services: Record<string, ServiceSnap>): PreparedUpstreams {
    const next = new Map<string, Endpoint>()
    const out = new Map<string, ServiceRuntime>()
    const checks: Array<[Endpoint, ServiceSnap]> = []
    for (const svc of Object.values(services)) {
      const eps: Endpoint[] = []
      for (const ep of svc.endpoints) {
        // Pool options are part of the key: a changed timeout means a new pool.
        const key = `${svc.name}|${ep.origin}|${svc.connectTimeoutMs}|${svc.responseTimeoutMs}|${svc.keepAliveTimeoutMs}|${svc.connectionsPerEndpoint}|${svc.maxResponseHeaderBytes}|${ep.pathPrefix}`
        let e = next.get(key) ?? this.endpoints.get(key)
        if (e === undefined) e = new Endpoint(key, ep, svc)
        next.set(key, e)
        eps.push(e)
        checks.push([e, svc])
      }
      out.set(svc.name, new ServiceRuntime(svc, eps))
    }
    return {
      services: out,
      commit: () => {
        for (const [e, svc] of checks) {
          e.weight = svc.endpoints.find((x) => e.origin === x.origin && e.pathPrefix === x.pathPrefix)?.weight ?? e.weight
          e.configureActiveChecks(svc)
        }
        for (const [key, e] of this.endpoints) if (!next.has(key)) void e.close()
        this.endpoints = next
      },
      discard: () => {
        for (const [key, e] of next) if (!this.endpoints.has(key)) void e.close()
      },
    }
  }

  /** Upstream connections open now, over every endpoint (for the connection cap). */
  connected(): number {
    let n = 0
    for (const e of this.endpoints.values()) n += e.pool.stats.connected
    return n
  }

  closeAll(): Promise<void> {
    const all = [...this.endpoints.values()]
    this.endpoints.clear()
    return Promise.all(all.map((e) => e.close())).then(() => {})
  }
}

/**
 * undici's TLS handshake failures surface with OpenSSL's verification codes or Node's
 * ERR_TLS_* / ERR_SSL_* codes; all of them happen before the request is written.
 */
const TLS_VERIFY = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH', 'EPROTO',
])

function isTlsFailure(c: string): boolean {
  return TLS_VERIFY.has(c) || c.startsWith('ERR_TLS_') || c.startsWith('ERR_SSL_')
}

/**
 * Connect-phase failures: the request was never written, so another endpoint may be
 * tried. `UND_ERR_CLOSED`/`UND_ERR_DESTROYED` are thrown by `dispatch` itself when the
 * pool was closed by a reload that removed the endpoint while this exchange still held it.
 */
export function isConnectFailure(err: { code?: string }): boolean {
  const c = err.code
  if (c === undefined) return false
  switch (c) {
    case 'ECONNREFUSED': case 'UND_ERR_CONNECT_TIMEOUT': case 'ETIMEDOUT': case 'EHOSTUNREACH':
    case 'EHOSTDOWN': case 'ENETUNREACH': case 'ENETDOWN': case 'ENOTFOUND': case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL': case 'UND_ERR_CLOSED': case 'UND_ERR_DESTROYED':
      return true
    default:
      return isTlsFailure(c)
  }
}

/**
 * The one mapping from undici/socket failures to Gatehouse codes (STYLE.md §2.3), checked
 * against every code in undici 7.30 `lib/core/errors.js`. Failures the gateway or the
 * client caused (an abort, an argument undici refuses, a throwing handler) are not the
 * upstream's, and must not become a 502 that counts against the endpoint: see
 * `isEndpointFailure`.
 */
export function upstreamErrorCode(err: { code?: string }): ErrorCode {
  const c = err.code
  // llhttp failures: undici 7 builds HTTPParserError's code from a table that has no
  // reverse mapping, so `code` is undefined; its class is the only stable mark.
  if (c === undefined && err instanceof undiciErrors.HTTPParserError) return 'GH_ERR_UPSTREAM_PROTOCOL'
  switch (c) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return 'GH_ERR_UPSTREAM_REFUSED'
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT': // the kernel gave up on SYN retransmits before undici's timer
      return 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT'
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'GH_ERR_UPSTREAM_TIMEOUT'
    case 'ECONNRESET':
    case 'ECONNABORTED':
    case 'EPIPE':
    case 'UND_ERR_SOCKET': // "other side closed" and friends
    case 'UND_ERR_INFO': // socket torn down under a request
      return 'GH_ERR_UPSTREAM_RESET'
    case 'UND_ERR_HEADERS_OVERFLOW': // response head larger than maxHeaderSize
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH': // body shorter or longer than its Content-Length
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return 'GH_ERR_UPSTREAM_PROTOCOL'
    case 'UND_ERR_CLOSED': // dispatch on a pool a reload already closed
    case 'UND_ERR_DESTROYED':
    case 'UND_ERR_BPL_MISSING_UPSTREAM': // (BalancedPool, not used today) no upstream left
      return 'GH_ERR_UPSTREAM_UNAVAILABLE'
    case 'UND_ERR_INVALID_ARG': // undici refuses the request as sent (e.g. a path with chars > 0xff)
      return 'GH_ERR_REQUEST_MALFORMED'
    case undefined: // not an undici/socket error: our own abort, or a handler that threw
    case 'UND_ERR_ABORTED': // we aborted it (client gone, body limit)
    case 'UND_ERR_ABORT':
    case 'UND_ERR_NOT_SUPPORTED': // e.g. an Expect header undici will not send
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH': // our request body disagreed with its length
    case 'UND_ERR_INVALID_RETURN_VALUE':
    case 'UND_ERR_MAX_ORIGINS_REACHED': // (Agent option, not used today)
    case 'UND_ERR': // bare UndiciError: undici's own invariant failed
      return 'GH_ERR_INTERNAL'
    default:
      // HPE_* (llhttp parse errors), TLS handshake failures, the interceptor/proxy errors a
      // plain Pool never raises (REQ_RETRY, RESPONSE, PRX_TLS, SOCKS5), anything new: the
      // upstream did not speak HTTP we can forward.
      return 'GH_ERR_UPSTREAM_PROTOCOL'
  }
}

/**
 * What an UpstreamCall aborts with when a response head has more fields than the Service's
 * `maxResponseHeaderCount` (undici bounds the head's bytes only): undici's own overflow
 * class, so it maps to GH_ERR_UPSTREAM_PROTOCOL and counts like the byte limit.
 */
export function tooManyResponseHeaders(count: number, limit: number): Error {
  return new undiciErrors.HeadersOverflowError(`response has ${count} header fields, limit is ${limit}`)
}

/**
 * Whether a mapped failure is the endpoint's fault and counts toward passive ejection.
 * A client abort, a request undici refused, a closed pool or a gateway bug is not.
 */
export function isEndpointFailure(code: ErrorCode): boolean {
  return code === 'GH_ERR_UPSTREAM_REFUSED' || code === 'GH_ERR_UPSTREAM_RESET' ||
    code === 'GH_ERR_UPSTREAM_PROTOCOL' || code === 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT' ||
    code === 'GH_ERR_UPSTREAM_TIMEOUT'
}
