/** http-basic-authentication options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

/**
 * bcrypt ($2a$/$2b$/$2y$, cost 04–31, the 53-character salt+digest) or Apache's `{SHA}`
 * (base64 of an unsalted SHA-1, 28 characters). Anything else, plaintext above all, is
 * rejected here so a password never sits in a config file.
 */
export const PASSWORD_HASH = '^(?:\\$2[aby]\\$(?:0[4-9]|[12][0-9]|3[01])\\$[./A-Za-z0-9]{53}|\\{SHA\\}[A-Za-z0-9+/]{27}=)$'

const User = Type.Object({
  username: Type.String({
    minLength: 1,
    // Basic credentials are "user:password": a colon cannot be part of a user name (RFC 7617 §2).
    pattern: '^[^:\\x00-\\x1f\\x7f]+$',
    errorMessage: 'must be a non-empty user name without ":" or control characters',
    description: 'User name as the client sends it (case-sensitive). Becomes the consumer on success.',
  }),
  passwordHash: Type.String({
    pattern: PASSWORD_HASH,
    errorMessage: 'must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. `htpasswd -nbB user pass`) or {SHA}base64(sha1); plaintext passwords are not accepted',
    description: 'bcrypt ($2a$/$2b$/$2y$) or {SHA} hash of the password. Never the password itself.',
  }),
}, { additionalProperties: false })

/** An anyOf branch "field present"; Ajv's strictRequired wants the field declared beside `required`. */
function requires(field: string): Record<string, unknown> {
  return { type: 'object', properties: { [field]: {} }, required: [field] }
}

export const schema = Type.Object({
  realm: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: '^[^"\\\\\\x00-\\x1f\\x7f]+$',
    default: 'gatehouse',
    errorMessage: 'must be a non-empty realm without quotes, backslashes or control characters',
    description: 'Realm in the WWW-Authenticate challenge (browsers show it in the login prompt).',
  })),
  users: Type.Optional(Type.Array(User, {
    minItems: 1,
    description: 'Inline users with hashed passwords (use ${env:...} or ${file:...} for the hashes if you prefer).',
  })),
  htpasswdFile: Type.Optional(Type.String({
    pattern: '^/',
    errorMessage: 'must be an absolute path',
    description: 'Absolute path of an htpasswd file (user:hash lines, bcrypt or {SHA}); read when the config is applied.',
  })),
  forwardCredentials: Type.Optional(Type.Boolean({
    default: false,
    description: 'Keep the Authorization header on the upstream request (it is removed by default).',
  })),
}, {
  additionalProperties: false,
  // At least one source of users: a policy with none would reject every request.
  anyOf: [requires('users'), requires('htpasswdFile')],
  errorMessage: 'needs users, htpasswdFile or both',
})

export type HttpBasicAuthenticationConfig = Static<typeof schema>
export const order = 20
