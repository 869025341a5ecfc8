/** The Service kind: a named upstream with its pool and health settings. @module */
import { Type, type Static } from '@sinclair/typebox'
import { DEFAULTS } from '../defaults.js'
import { Closed, Millis, OneOf, resource, Url } from './common.js'

const D = DEFAULTS.service

export const Endpoint = Type.Union([
  Url,
  Closed({ url: Url, weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: D.endpointWeight })) }),
], { errorMessage: 'must be a URL or {url, weight}' })
export type Endpoint = Static<typeof Endpoint>

export const Endpoints = Type.Array(Endpoint, { minItems: 1 })

const Passive = Closed({
  /** 0 disables passive ejection. */
  consecutiveFailures: Type.Optional(Type.Integer({ minimum: 0, default: D.passive.consecutiveFailures })),
  baseEjectionMs: Type.Optional(Millis(D.passive.baseEjectionMs)),
  maxEjectionMs: Type.Optional(Millis(D.passive.maxEjectionMs)),
})

const Status = Type.Integer({ minimum: 100, maximum: 599 })
const Active = Closed({
  path: Type.String({ pattern: '^/', errorMessage: 'must be a path starting with "/"' }),
  intervalMs: Type.Optional(Millis(D.active.intervalMs, 100)),
  timeoutMs: Type.Optional(Millis(D.active.timeoutMs, 1)),
  healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, default: D.active.healthyThreshold })),
  unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, default: D.active.unhealthyThreshold })),
  /** Inclusive [min, max]. */
  expectedStatus: Type.Optional(Type.Tuple([Status, Status], { default: D.active.expectedStatus })),
})

export const ServiceSpec = Closed({
  endpoints: Endpoints,
  loadBalancing: Type.Optional(OneOf(['round-robin', 'least-request'], { default: D.loadBalancing })),
  timeouts: Type.Optional(Closed({
    connectMs: Type.Optional(Millis(D.connectMs, 1)),
    responseMs: Type.Optional(Millis(D.responseMs, 1)),
  })),
  /** Extra attempts on another endpoint (idempotent, unsent requests only). */
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: D.retries })),
  keepAliveTimeoutMs: Type.Optional(Millis(D.keepAliveTimeoutMs)),
  connectionsPerEndpoint: Type.Optional(Type.Integer({ minimum: 1, default: D.connectionsPerEndpoint })),
  /** Upstream response header names + values, in bytes → 502 when reached (undici's maxHeaderSize). */
  maxResponseHeaderBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * 1024, default: D.maxResponseHeaderBytes })),
  /** Upstream response header fields → 502 beyond. */
  maxResponseHeaderCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: D.maxResponseHeaderCount })),
  healthChecks: Type.Optional(Closed({
    passive: Type.Optional(Passive),
    /** Absent = no active probing. */
    active: Type.Optional(Active),
  })),
})
export type ServiceSpec = Static<typeof ServiceSpec>

export const Service = resource('Service', ServiceSpec)
export type Service = Static<typeof Service>
