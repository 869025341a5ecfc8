/** json-threat-protection options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const Limit = (description: string) => Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description }))

export const schema = Type.Object({
  /** Deepest nesting of objects/arrays; a top-level `{}` is depth 1. Omitted = unlimited. */
  maxDepth: Limit('deepest object/array nesting (top-level container = 1)'),
  /** Most keys in one object. */
  maxEntriesPerObject: Limit('most keys in one object'),
  /** Longest object key, in characters (Unicode code points after unescaping). */
  maxNameLength: Limit('longest key, in characters'),
  /** Most elements in one array. */
  maxArraySize: Limit('most elements in one array'),
  /** Longest string value, in characters (Unicode code points after unescaping). */
  maxStringLength: Limit('longest string value, in characters'),
  /** Reject (400) bodied requests whose Content-Type is not JSON instead of passing them uninspected. */
  rejectNonJson: Type.Optional(Type.Boolean({ default: false })),
}, { additionalProperties: false })

export type JsonThreatProtectionConfig = Static<typeof schema>
/** After authentication and rate limiting (a cheap 401/429 first), before transforms. */
export const order = 50
