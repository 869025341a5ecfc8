/**
 * Schema fragments shared by the token-based authentication policies (jwt-validation,
 * oauth2-introspection). Pure data: safe for the primary to import.
 *
 * @module
 */
import { Type, type Static } from '@sinclair/typebox'

export const HeaderName = Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', errorMessage: 'must be an HTTP header name' })
/** Goes inside a quoted WWW-Authenticate parameter: no quotes, backslashes or control characters. */
export const QuotedSafe = Type.String({ pattern: '^[^"\\\\\\x00-\\x1f\\x7f]*$', errorMessage: 'must not contain quotes, backslashes or control characters' })
export const HttpUrl = Type.String({ pattern: '^https?://[^\\s/?#]+[^\\s]*$', errorMessage: 'must be an http:// or https:// URL' })

/**
 * Where the credential is read. Default: `Authorization: Bearer <token>`. A header with
 * `scheme: ""` (the default for headers other than Authorization) carries the bare token.
 */
export const TokenSource = Type.Union([
  Type.Object({
    header: HeaderName,
    /** Auth scheme before the token, matched case-insensitively. */
    scheme: Type.Optional(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]*$' })),
  }, { additionalProperties: false }),
  Type.Object({ query: Type.String({ minLength: 1, pattern: '^[^&=#\\s]+$' }) }, { additionalProperties: false }),
  Type.Object({ cookie: Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }) }, { additionalProperties: false }),
], { errorMessage: 'must be one of { header, scheme? }, { query } or { cookie }' })

/** claim name → upstream request header. A client-sent header of that name is always dropped. */
export const ForwardClaims = Type.Record(Type.String({ minLength: 1 }), HeaderName, { additionalProperties: false })

export type TokenSourceConfig = Static<typeof TokenSource>
