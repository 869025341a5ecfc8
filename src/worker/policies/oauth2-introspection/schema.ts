/**
 * oauth2-introspection options. Pure data: safe for the primary to import. Token source and
 * claim forwarding are the same fragments jwt-validation uses.
 *
 * @module
 */
import { Type, type Static } from '@sinclair/typebox'
import { ForwardClaims, HttpUrl, TokenSource } from '../../auth/schema-parts.js'

export const schema = Type.Object({
  /** The authorization server's RFC 7662 endpoint. */
  introspectionUrl: HttpUrl,
  /** Client credentials, sent with HTTP Basic (RFC 6749 §2.3.1). Use `${env:...}` for the secret. */
  clientId: Type.String({ minLength: 1 }),
  clientSecret: Type.String({ minLength: 1 }),
  /** Deadline of one introspection call, connect included; past it the request gets 503. */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, default: 3000 })),
  tokenTypeHint: Type.Optional(Type.String({ minLength: 1, default: 'access_token' })),
  /** Scopes the token's space-separated `scope` must all include (403 insufficient_scope otherwise). */
  requiredScopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$' }), { uniqueItems: true })),
  /** Active results are kept until the token's `exp`, and no longer than this. */
  cacheTtlMs: Type.Optional(Type.Integer({ minimum: 0, default: 60_000 })),
  /** Inactive results are kept this long, so a replayed dead token does not hit the IdP each time. */
  negativeCacheTtlMs: Type.Optional(Type.Integer({ minimum: 0, default: 5000 })),
  /** Results kept per worker (LRU); 0 turns caching off. */
  cacheSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 })),
  forwardClaims: Type.Optional(ForwardClaims),
  forwardToken: Type.Optional(Type.Boolean({ default: false })),
  tokenSource: Type.Optional(TokenSource),
  realm: Type.Optional(Type.String({ pattern: '^[^"\\\\\\x00-\\x1f\\x7f]*$', errorMessage: 'must not contain quotes, backslashes or control characters' })),
}, { additionalProperties: false })

export type IntrospectionConfig = Static<typeof schema>
export const order = 30
