/** api-key options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

/** `sha256:` + 64 hex digits: the hash of the key, never the key (`printf %s KEY | sha256sum`). */
export const KEY_HASH = '^sha256:[0-9a-fA-F]{64}$'

const Key = Type.Object({
  name: Type.String({
    minLength: 1,
    pattern: '^[^:\\x00-\\x1f\\x7f]+$',
    errorMessage: 'must be a non-empty consumer name without ":" or control characters',
    description: 'Consumer the key belongs to (becomes ex.consumer). Several keys may share a name, e.g. during rotation.',
  }),
  keyHash: Type.String({
    pattern: KEY_HASH,
    errorMessage: 'must be "sha256:" and the 64 hex digits of the key\'s SHA-256 (`printf %s KEY | sha256sum`); plaintext keys are not accepted',
    description: 'sha256:<hex> of the key (`printf %s KEY | sha256sum`). Never the key itself.',
  }),
}, { additionalProperties: false })

/** An anyOf branch "field present"; Ajv's strictRequired wants the field declared beside `required`. */
function requires(field: string): Record<string, unknown> {
  return { type: 'object', properties: { [field]: {} }, required: [field] }
}

export const schema = Type.Object({
  in: Type.Optional(Type.Union([Type.Literal('header'), Type.Literal('query')], {
    default: 'header',
    description: 'Where the client sends the key: a request header or a query parameter.',
  })),
  name: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 100,
    pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$',
    errorMessage: 'must be a header or parameter name (letters, digits and !#$%&\'*+.^_`|~-)',
    description: 'Header name (case-insensitive; default x-api-key) or query parameter name (exact; default api_key).',
  })),
  keys: Type.Optional(Type.Array(Key, {
    minItems: 1,
    description: 'Inline keys, as hashes.',
  })),
  keysFile: Type.Optional(Type.String({
    pattern: '^/',
    errorMessage: 'must be an absolute path',
    description: 'Absolute path of a file of `name:sha256hex` lines (# comments allowed); read when the config is applied.',
  })),
  forwardKey: Type.Optional(Type.Boolean({
    default: false,
    description: 'Keep the key on the upstream request (it is removed by default).',
  })),
}, {
  additionalProperties: false,
  // At least one source of keys: a policy with none would reject every request.
  anyOf: [requires('keys'), requires('keysFile')],
  errorMessage: 'needs keys, keysFile or both',
})

export type ApiKeyConfig = Static<typeof schema>
export const order = 25
