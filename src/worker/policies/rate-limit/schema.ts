/** rate-limit options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const HeaderName = Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' })

export const schema = Type.Object({
  /** Every window must allow a request (e.g. 10 per second and 500 per minute). */
  rateLimits: Type.Array(Type.Object({
    maximumRequests: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
    timePeriodInMilliseconds: Type.Integer({ minimum: 10, maximum: 31 * 24 * 3600 * 1000 }),
  }, { additionalProperties: false }), { minItems: 1, maxItems: 8 }),
  /**
   * What a counter is per: the parts given are combined. Default: the client address.
   * `consumer` is the api-key name / basic-auth user / token subject set by an
   * authentication policy that runs earlier; `claim` a claim of a verified token.
   */
  keySelector: Type.Optional(Type.Object({
    clientIp: Type.Optional(Type.Boolean()),
    header: Type.Optional(HeaderName),
    query: Type.Optional(Type.String({ minLength: 1 })),
    consumer: Type.Optional(Type.Boolean()),
    claim: Type.Optional(Type.String({ minLength: 1 })),
    route: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false, minProperties: 1 })),
  /** RateLimit-Limit / -Remaining / -Reset / -Policy on responses, Retry-After on 429. */
  exposeHeaders: Type.Optional(Type.Boolean({ default: true })),
  /** Share counters through the store (Redis across hosts); false = per host. */
  clusterizable: Type.Optional(Type.Boolean({ default: true })),
  /** When the shared store cannot answer: the host's embedded store, let through, or refuse (503). */
  onStoreFailure: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('allow'), Type.Literal('deny')], { default: 'local' })),
  /** Longest a request waits for a lease before the fallback decides. */
  maxWaitMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 20 })),
}, { additionalProperties: false })

export type RateLimitConfig = Static<typeof schema>
export const order = 40
