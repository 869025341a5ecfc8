/** The Configuration kind: process-wide settings; at most one per directory. @module */
import { Type, type Static } from '@sinclair/typebox'
import { DEFAULTS } from '../defaults.js'
import { Closed, Millis, NonEmpty, OneOf, resource, Url } from './common.js'

const H = DEFAULTS.host

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
    accessLogs: Type.Optional(Closed({ enabled: Type.Optional(Type.Boolean({ default: H.accessLogs })) })),
    directory: Type.Optional(NonEmpty),
  })),
  metrics: Type.Optional(Closed({ enabled: Type.Optional(Type.Boolean()), address: Type.Optional(Url) })),
  /** Accepted; not used yet. */
  tracing: Type.Optional(Closed({
    enabled: Type.Optional(Type.Boolean()),
    endpoint: Type.Optional(Url),
    sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    serviceName: Type.Optional(NonEmpty),
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
  })),
})
export type ConfigurationSpec = Static<typeof ConfigurationSpec>

export const Configuration = resource('Configuration', ConfigurationSpec)
export type Configuration = Static<typeof Configuration>
