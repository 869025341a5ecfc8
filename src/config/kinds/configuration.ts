/** The Configuration kind: process-wide settings; at most one per directory. @module */
import { Type, type Static } from '@sinclair/typebox'
import { DEFAULTS } from '../defaults.js'
import { Closed, HeaderName, Millis, NonEmpty, OneOf, resource } from './common.js'

const H = DEFAULTS.host

/** http://host:port (port 1-65535), nothing after the port but an optional "/". */
const METRICS_ADDRESS = '^http://(\\[[0-9a-fA-F:.]+\\]|[^\\[\\]/:@\\s]+):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$'

const HostPort = Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^:\\s]+):[0-9]{1,5}$', errorMessage: 'must be host:port' })

const Redis = Closed({
  /** host:port of the Redis server (ignored when `sentinel` is set). */
  address: Type.Optional(HostPort),
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  db: Type.Optional(Type.Integer({ minimum: 0, maximum: 15 })),
  tls: Type.Optional(Type.Boolean()),
  /** Redis Sentinel: the master's name and the sentinels to ask for it. */
  sentinel: Type.Optional(Closed({
    name: NonEmpty,
    addresses: Type.Array(HostPort, { minItems: 1 }),
    password: Type.Optional(Type.String()),
  })),
  /** A Redis command slower than this counts as a failure (circuit breaker input). */
  commandTimeoutMs: Type.Optional(Millis(250, 10)),
})

/** Client deadlines of a listener; see src/worker/client-timeouts.ts. */
const ClientTimeouts = Closed({
  /** No request body bytes for this long while the gateway reads the body → 408, close, upstream cancelled. */
  bodyIdleTimeoutMs: Type.Optional(Millis(H.timeouts.bodyIdleTimeoutMs, 500)),
  /** The client reads none of the response for this long → connection closed, upstream cancelled. */
  sendTimeoutMs: Type.Optional(Millis(H.timeouts.sendTimeoutMs, 500)),
})

export const ConfigurationSpec = Closed({
  workers: Type.Optional(Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 1024 })], {
    default: H.workers,
    errorMessage: 'must be "auto" or an integer >= 1',
  })),
  /** Redis shared by every host for rate-limit counters (the embedded store otherwise). */
  sharedStorage: Type.Optional(Closed({ redis: Type.Optional(Redis) })),
  logging: Type.Optional(Closed({
    runtimeLogs: Type.Optional(Closed({
      logLevel: Type.Optional(OneOf(['debug', 'info', 'warn', 'error'], { default: H.logLevel })),
    })),
    accessLogs: Type.Optional(Closed({
      enabled: Type.Optional(Type.Boolean({ default: H.accessLogs })),
      /** Log the query string too (credential-like parameter values are redacted). */
      includeQuery: Type.Optional(Type.Boolean({ default: H.accessLogQuery })),
    })),
    directory: Type.Optional(NonEmpty),
  })),
  /**
   * Prometheus metrics (src/telemetry/metrics*.ts): GET /metrics on the admin listener, and
   * also on `address` (http://host:port, no token, restart to change) when set.
   */
  metrics: Type.Optional(Closed({
    enabled: Type.Optional(Type.Boolean({ default: H.metrics.enabled })),
    address: Type.Optional(Type.String({ pattern: METRICS_ADDRESS, errorMessage: 'must be an http://host:port URL' })),
  })),
  /** OpenTelemetry traces (src/telemetry/tracing.ts); on when the block is present unless `enabled: false`. */
  tracing: Type.Optional(Closed({
    enabled: Type.Optional(Type.Boolean()),
    /** OTLP/HTTP (JSON) traces URL; a URL without a path gets `/v1/traces`. */
    endpoint: Type.Optional(Type.String({ pattern: '^https?://', default: H.tracing.endpoint, errorMessage: 'must be an http:// or https:// URL' })),
    /** Ratio of new traces sampled (parent-based: a caller's sampled flag wins). */
    sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: H.tracing.sampling })),
    serviceName: Type.Optional(Type.String({ minLength: 1, default: H.tracing.serviceName })),
    /** Extra OTel resource attributes, e.g. deployment.environment.name. */
    resourceAttributes: Type.Optional(Type.Record(NonEmpty, Type.String(), { additionalProperties: false })),
    /** Headers sent with every export (collector auth). */
    headers: Type.Optional(Type.Record(HeaderName, Type.String(), { additionalProperties: false })),
  })),
  admin: Type.Optional(Closed({
    address: Type.Optional(Type.String({ minLength: 1, default: H.adminAddress })),
    token: Type.Optional(NonEmpty),
  })),
  drainTimeoutMs: Type.Optional(Millis(H.drainTimeoutMs)),
  heartbeat: Type.Optional(Closed({
    intervalMs: Type.Optional(Millis(H.heartbeatIntervalMs, 10)),
    misses: Type.Optional(Type.Integer({ minimum: 1, default: H.heartbeatMisses })),
  })),
  watch: Type.Optional(Type.Boolean({ default: H.watch })),
  /** CIDRs (or bare addresses) of proxies whose X-Forwarded-For is trusted. */
  trustedProxies: Type.Optional(Type.Array(Type.String({ format: 'cidr', errorMessage: 'must be an IP address or CIDR' }), { default: [] })),
  limits: Type.Optional(Closed({
    maxUrlBytes: Type.Optional(Type.Integer({ minimum: 64, maximum: 65536, default: H.limits.maxUrlBytes })),
    maxHeaderBytes: Type.Optional(Type.Integer({ minimum: 256, maximum: 65536, default: H.limits.maxHeaderBytes })),
    maxHeaderCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 47, default: H.limits.maxHeaderCount })),
    /** Bodies with a Content-Length up to this are read whole before going upstream; 0 = always stream. */
    requestBufferBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024, default: H.limits.requestBufferBytes })),
    /** Response bytes held per response for a client that reads slower than the upstream sends; 0 = none. */
    responseBufferBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 256 * 1024 * 1024, default: H.limits.responseBufferBytes })),
    /** What all responses of one worker may hold together. */
    responseBufferTotalBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024 * 1024, default: H.limits.responseBufferTotalBytes })),
  })),
  /**
   * Client deadlines for every listener (src/worker/client-timeouts.ts). A request head that
   * does not complete and an idle keep-alive connection are closed by uWS's fixed ~10 s timer
   * (not configurable in this build).
   */
  timeouts: Type.Optional(ClientTimeouts),
  /** Per-listener settings, keyed by an ApiInstance address's "host:port" (IPv6 in brackets). */
  listeners: Type.Optional(Type.Record(Type.String({ pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]/]+):[0-9]{1,5}$' }),
    Closed({ timeouts: Type.Optional(ClientTimeouts) }),
    { additionalProperties: false, errorMessage: 'keys must be "host:port" of a listener, e.g. "0.0.0.0:8080" or "[::]:8443"' })),
  /**
   * Load shedding per worker (src/worker/overload.ts): past either limit a new request gets a
   * prompt 503 GH_ERR_OVERLOADED with Retry-After and Connection: close. There is no
   * connection cap: this uWS build reports no connection open/close, so open connections are
   * bounded by maxRequestsInFlight, uWS's fixed 10 s idle timeout and the unit's LimitNOFILE.
   */
  overload: Type.Optional(Closed({
    /** Client connections per worker before it stops accepting (src/worker/connection-cap.ts); 0 = no cap. */
    maxConnections: Type.Optional(Type.Integer({ minimum: 0, default: H.overload.maxConnections })),
    /** Requests in flight per worker; 0 = no cap. */
    maxRequestsInFlight: Type.Optional(Type.Integer({ minimum: 0, default: H.overload.maxRequestsInFlight })),
    /** Event-loop lag (ms) beyond which a worker sheds; 0 = off. Sampled every 50 ms, so at least 50. */
    maxEventLoopLagMs: Type.Optional(Type.Union([Type.Literal(0), Type.Integer({ minimum: 50 })], {
      default: H.overload.maxEventLoopLagMs,
      errorMessage: 'must be 0 (off) or an integer >= 50',
    })),
  })),
})
export type ConfigurationSpec = Static<typeof ConfigurationSpec>

export const Configuration = resource('Configuration', ConfigurationSpec)
export type Configuration = Static<typeof Configuration>
