/** The ApiInstance kind: a listener address + base path, its routes and policies. @module */
import { Type, type Static } from '@sinclair/typebox'
import { DEFAULTS } from '../defaults.js'
import { Closed, Name, NonEmpty, Order, PolicyRef, resource, Rule, Url } from './common.js'
import { Endpoints } from './service.js'

export const Route = Closed({
  /** Any rule matching selects the route; none = every request. */
  rules: Type.Optional(Type.Array(Rule)),
  /** Percent of a split (routes with identical rules); a route alone may omit it. */
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
})
export type Route = Static<typeof Route>

/** Exactly one of `service`, `address`, `endpoints` (checked with a clearer message later). */
export const ServiceEntry = Closed({
  service: Type.Optional(Name),
  address: Type.Optional(Url),
  endpoints: Type.Optional(Endpoints),
  routes: Type.Array(Route, { minItems: 1 }),
})
export type ServiceEntry = Static<typeof ServiceEntry>

export const PolicyEntry = Closed({
  policyRef: PolicyRef,
  /** Validated against the named policy's own schema. */
  config: Type.Optional(Type.Unknown()),
  order: Type.Optional(Order),
  rules: Type.Optional(Type.Array(Rule)),
})
export type PolicyEntry = Static<typeof PolicyEntry>

export const Tls = Closed({ certFile: NonEmpty, keyFile: NonEmpty, passphrase: Type.Optional(Type.String()) })

const SERVICE_KEY = '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'

export const ApiInstanceSpec = Closed({
  /** http(s)://host:port/base — listener and base path. */
  address: Url,
  /** Required with https://; at most one ApiInstance per port carries it. */
  tls: Type.Optional(Tls),
  services: Type.Record(
    Type.String({ pattern: SERVICE_KEY, errorMessage: 'must be letters, digits, "-", "_" or "."' }),
    ServiceEntry,
    { additionalProperties: false, minProperties: 1 },
  ),
  policies: Type.Optional(Type.Array(PolicyEntry)),
  maxRequestBodyBytes: Type.Optional(Type.Integer({ minimum: 0, default: DEFAULTS.api.maxRequestBodyBytes })),
  preserveHost: Type.Optional(Type.Boolean({ default: DEFAULTS.api.preserveHost })),
})
export type ApiInstanceSpec = Static<typeof ApiInstanceSpec>

export const ApiInstance = resource('ApiInstance', ApiInstanceSpec)
export type ApiInstance = Static<typeof ApiInstance>
