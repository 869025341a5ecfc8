/**
 * The compiled config snapshot: plain JSON, the only thing a worker receives from the
 * config pipeline. Everything that can be resolved at compile time is resolved here
 * (service references, defaults, weights, sorted policies), so workers only build
 * regexes and pools from it.
 *
 * Regexes are kept as source strings (JSON cannot carry RegExp); the worker anchors and
 * compiles them once per snapshot.
 *
 * @module
 */

/** One match rule. Every present field must match; absent fields match anything. */
export interface RuleSnap {
  /** Regex source, matched anchored (^...$) against the path after the base path. */
  path?: string
  /** Regex source over the method, anchored, e.g. "GET|POST". */
  methods?: string
  /** Regex source over the Host header (without port), anchored. */
  host?: string
  /** Lowercase header name → regex source, anchored. A missing header never matches. */
  headers?: Record<string, string>
}

export interface RouteTargetSnap {
  /** Key into Snapshot.services. */
  service: string
  /** Relative weight; > 0. */
  weight: number
}

export interface RouteSnap {
  /** Stable id for metrics/logs: `${api}/${serviceKey}#${index}`. */
  id: string
  /** Any rule matching selects the route. Empty list = match everything. */
  rules: RuleSnap[]
  /** Weighted split. One entry when there is no split. */
  targets: RouteTargetSnap[]
}

export interface PolicySnap {
  /** Registry name, e.g. "cors". */
  name: string
  /** Lower runs first. */
  order: number
  /** Where it came from, for logs: "ApiInstance orders policies[0]" or "PolicyBinding orders-jwt". */
  source: string
  /** Only requests matching one of these rules; empty = every request of the target. */
  rules: RuleSnap[]
  /** Validated policy config (schema of the policy). Secrets already substituted. */
  config: unknown
}

export interface ApiSnap {
  name: string
  /** Normalised base path: "" for root, else "/x/y" without trailing slash. */
  basePath: string
  maxRequestBodyBytes: number
  /** Forward the client's Host header instead of the endpoint's. */
  preserveHost: boolean
  routes: RouteSnap[]
  /** Sorted by order (stable). */
  policies: PolicySnap[]
}

export interface TlsSnap {
  certFile: string
  keyFile: string
  passphrase?: string
}

export interface ListenerSnap {
  /** "0.0.0.0", "127.0.0.1", "::" ... */
  host: string
  port: number
  tls: TlsSnap | null
  /** Sorted longest basePath first, so the first prefix match is the most specific. */
  apis: ApiSnap[]
  /** Configuration.timeouts with this listener's overrides (Configuration.listeners). */
  timeouts: ClientTimeoutsSnap
}

/** Client deadlines of a listener (src/worker/client-timeouts.ts). */
export interface ClientTimeoutsSnap {
  bodyIdleTimeoutMs: number
  sendTimeoutMs: number
}

export interface EndpointSnap {
  /** "http://10.0.0.5:8080" origin (scheme://host:port), no path. */
  origin: string
  /** Path prefix of the endpoint URL, "" or "/base" (no trailing slash). */
  pathPrefix: string
  weight: number
}

export interface PassiveHealthSnap {
  /** Consecutive failures that eject an endpoint; 0 disables passive ejection. */
  consecutiveFailures: number
  baseEjectionMs: number
  maxEjectionMs: number
}

export interface ActiveHealthSnap {
  path: string
  intervalMs: number
  timeoutMs: number
  healthyThreshold: number
  unhealthyThreshold: number
  /** Status codes counted as healthy: [min, max] inclusive. */
  expectedStatus: [number, number]
}

export interface ServiceSnap {
  name: string
  endpoints: EndpointSnap[]
  loadBalancing: 'round-robin' | 'least-request'
  connectTimeoutMs: number
  responseTimeoutMs: number
  /** Extra attempts on another endpoint, only for idempotent methods and unsent requests. */
  retries: number
  keepAliveTimeoutMs: number
  connectionsPerEndpoint: number
  /** Upstream response header names + values, in bytes → 502 when reached (undici maxHeaderSize). */
  maxResponseHeaderBytes: number
  /** Upstream response header fields → 502 beyond (checked in UpstreamCall.onHeaders). */
  maxResponseHeaderCount: number
  passiveHealth: PassiveHealthSnap
  activeHealth: ActiveHealthSnap | null
}

export interface LimitsSnap {
  /** Max request-target (path + query) bytes → 414 beyond. */
  maxUrlBytes: number
  /** Max header section bytes (names + values) → 431 beyond. */
  maxHeaderBytes: number
  /** Max header count → 431 beyond. */
  maxHeaderCount: number
  /** Request bodies with a Content-Length up to this are read whole before the upstream request starts; 0 = always stream. */
  requestBufferBytes: number
  /** Response bytes read ahead of a slow client, per response; 0 = pause the upstream at once. */
  responseBufferBytes: number
  /** The same, for all responses of one worker together. */
  responseBufferTotalBytes: number
}

/** Load shedding per worker (src/worker/overload.ts). */
export interface OverloadSnap {
  /** Requests in flight per worker before new ones get 503 GH_ERR_OVERLOADED; 0 = no cap. */
  maxRequestsInFlight: number
  /** Event-loop lag (ms) beyond which new requests get 503 GH_ERR_OVERLOADED; 0 = off. */
  maxEventLoopLagMs: number
  /** Client connections per worker before it stops accepting (src/worker/connection-cap.ts); 0 = no cap. */
  maxConnections: number
}

export interface RedisSnap {
  /** [host, port] pairs: one server, or the sentinels when `sentinelName` is set. */
  hosts: Array<[string, number]>
  sentinelName: string | null
  sentinelPassword: string | null
  username: string | null
  password: string | null
  db: number
  tls: boolean
  commandTimeoutMs: number
}

export interface MetricsSnap {
  /** Off: workers subscribe to nothing and /metrics answers 404. */
  enabled: boolean
  /** A dedicated listener for GET /metrics (no token), besides the admin one; null = none. */
  address: { host: string; port: number } | null
}

export interface HostSnap {
  /** Resolved worker count (`auto` resolved by the primary at start, not here). */
  workers: number | 'auto'
  admin: { host: string; port: number; token: string | null }
  drainTimeoutMs: number
  heartbeatIntervalMs: number
  /** Missed heartbeats tolerated before a worker is replaced as hung. */
  heartbeatMisses: number
  watch: boolean
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  accessLogs: boolean
  /** Access log lines include the query string (credential-like values redacted). */
  accessLogQuery: boolean
  logDirectory: string | null
  /** CIDRs whose X-Forwarded-For we append to; others get theirs replaced. */
  trustedProxies: string[]
  limits: LimitsSnap
  overload: OverloadSnap
  /** Redis for shared rate-limit counters; null = the embedded (per-host) store only. */
  redis: RedisSnap | null
  metrics: MetricsSnap
  tracing: TracingSnap
}

export interface TracingSnap {
  enabled: boolean
  /** OTLP/HTTP traces URL, path included (…/v1/traces). */
  endpoint: string
  /** Ratio of new traces sampled, 0..1 (a caller's sampled flag wins: parent-based). */
  sampling: number
  serviceName: string
  resourceAttributes: Record<string, string>
  /** Sent with every export. */
  headers: Record<string, string>
}

export interface Snapshot {
  /** Content hash of everything below (hex, 16 chars). */
  version: string
  host: HostSnap
  listeners: ListenerSnap[]
  services: Record<string, ServiceSnap>
}
