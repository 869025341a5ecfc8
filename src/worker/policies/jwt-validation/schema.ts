/**
 * jwt-validation options. Pure data: safe for the primary to import. The token-source and
 * claim-forwarding fragments live in src/worker/auth/schema-parts.ts (shared with
 * oauth2-introspection).
 *
 * @module
 */
import { Type, type Static } from '@sinclair/typebox'
import { ForwardClaims, HttpUrl, QuotedSafe, TokenSource } from '../../auth/schema-parts.js'

export const ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512',
] as const

/** `required: [name]` in a subschema (Ajv's strictRequired wants the property declared beside it). */
function has(name: string): { properties: Record<string, true>; required: string[] } {
  return { properties: { [name]: true }, required: [name] }
}

/** Matches a config whose `algorithms` lists one matching `pattern`. */
function uses(pattern: string): Record<string, unknown> {
  return { properties: { algorithms: { type: 'array', contains: { type: 'string', pattern } } }, required: ['algorithms'] }
}

const ClaimValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()])

export const schema = Type.Object({
  /** Allow-list; a token whose `alg` is not here is rejected before any key is looked at. `none` is never accepted. */
  algorithms: Type.Array(Type.Union(ALGORITHMS.map((a) => Type.Literal(a))), { minItems: 1, uniqueItems: true }),
  /** JWKS endpoint of the identity provider (RS/PS/ES/EdDSA keys, selected by `kid`). */
  jwksUrl: Type.Optional(HttpUrl),
  /**
   * PEM public keys or certificates (use `${file:/path}` to read one from a file). They carry
   * no kid, so they match on key type and curve alone; beside jwksUrl they join the fetched
   * set and serve tokens without a kid.
   */
  publicKeys: Type.Optional(Type.Array(
    Type.String({ pattern: '-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----', errorMessage: 'must be a PEM public key or certificate ("${file:/path}" reads one from a file)' }),
    { minItems: 1 })),
  /** HMAC secret for HS* (typically `${env:NAME}`); at least 32 bytes once decoded. */
  secret: Type.Optional(Type.String({ minLength: 32 })),
  secretEncoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64'), Type.Literal('base64url')], { default: 'utf8' })),
  /** How long fetched JWKS keys (and verified tokens) are trusted before a refresh. */
  cacheTtlMs: Type.Optional(Type.Integer({ minimum: 1000, default: 600_000 })),
  /** At most one JWKS request per this interval, whatever triggers it (unknown kid, expiry, failure). */
  minRefetchIntervalMs: Type.Optional(Type.Integer({ minimum: 0, default: 30_000 })),
  /** Deadline for one JWKS request, connect included. */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, default: 5000 })),
  issuer: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })])),
  audience: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })])),
  clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 600, default: 30 })),
  /**
   * Claims that must be present (403 otherwise). With `value`, the claim must equal it,
   * contain it (array claims), or list it (space-separated `scope`/`scp`).
   */
  requiredClaims: Type.Optional(Type.Array(Type.Union([
    Type.String({ minLength: 1 }),
    Type.Object({ name: Type.String({ minLength: 1 }), value: Type.Optional(ClaimValue) }, { additionalProperties: false }),
  ], { errorMessage: 'must be a claim name or { name, value }' }))),
  /** Claim that names the consumer (rate-limit key, access log). */
  consumerClaim: Type.Optional(Type.String({ minLength: 1, default: 'sub' })),
  forwardClaims: Type.Optional(ForwardClaims),
  /** Keep the token on the upstream request (it is removed by default). */
  forwardToken: Type.Optional(Type.Boolean({ default: false })),
  tokenSource: Type.Optional(TokenSource),
  /** realm of WWW-Authenticate; default: the API name. */
  realm: Type.Optional(QuotedSafe),
  /** Verified tokens kept per worker (LRU) so a repeated token is checked synchronously; 0 turns it off. */
  cacheSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 })),
}, {
  additionalProperties: false,
  allOf: [
    { anyOf: [has('jwksUrl'), has('publicKeys'), has('secret')], errorMessage: 'needs a key source: jwksUrl, publicKeys or secret' },
    { anyOf: [{ not: uses('^HS') }, has('secret')], errorMessage: 'HS256/HS384/HS512 need a secret' },
    { anyOf: [{ not: uses('^(RS|PS|ES|Ed)') }, has('jwksUrl'), has('publicKeys')], errorMessage: 'RS/PS/ES/EdDSA algorithms need jwksUrl or publicKeys' },
  ],
})

export type JwtValidationConfig = Static<typeof schema>
export const order = 30
