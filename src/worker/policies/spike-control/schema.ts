/** spike-control options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

export const schema = Type.Object({
  /** Requests admitted per `timePeriodInMilliseconds`, spread evenly: one every period/maximumRequests ms. */
  maximumRequests: Type.Integer({ minimum: 1 }),
  timePeriodInMilliseconds: Type.Integer({ minimum: 1 }),
  /** Requests that may pass back to back before the spacing applies (token-bucket depth). */
  burst: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
  /** How long a request over the rate waits before it is tried again. */
  delayTimeInMillis: Type.Optional(Type.Integer({ minimum: 1, default: 1000 })),
  /** How many times a waiting request is tried again before it gets 429 (0 = never wait). */
  delayAttempts: Type.Optional(Type.Integer({ minimum: 0, default: 1 })),
  /** How many requests may wait at once (per worker); one more gets 429 at once. */
  queuingLimit: Type.Optional(Type.Integer({ minimum: 0, default: 5 })),
}, { additionalProperties: false })

export type SpikeControlConfig = Static<typeof schema>
/** After rate limiting (40): quota first, then smoothing of what the quota admitted. */
export const order = 45
