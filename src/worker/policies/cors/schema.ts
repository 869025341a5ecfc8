/** cors options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const Token = Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' })

export const schema = Type.Object({
  /** Exact origins ("https://app.example") or "*" for any. */
  allowOrigins: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  /** Regex sources matched anchored against the Origin, in addition to allowOrigins. */
  allowOriginPatterns: Type.Optional(Type.Array(Type.String({ format: 'regex' }))),
  allowMethods: Type.Optional(Type.Array(Token, { default: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'] })),
  /** Request headers a preflight may ask for; omitted = echo what was asked. */
  allowHeaders: Type.Optional(Type.Array(Token)),
  exposeHeaders: Type.Optional(Type.Array(Token)),
  allowCredentials: Type.Optional(Type.Boolean({ default: false })),
  maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  /** Reject (403) a request whose Origin is not allowed, instead of passing it on without CORS headers. */
  rejectUnknownOrigins: Type.Optional(Type.Boolean({ default: false })),
}, { additionalProperties: false })

export type CorsConfig = Static<typeof schema>
export const order = 10
