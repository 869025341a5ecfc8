/** header-removal options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const Names = Type.Array(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), { uniqueItems: true })

export const schema = Type.Object({
  /** Removed from the request before it goes upstream (case-insensitive). */
  requestHeaders: Type.Optional(Names),
  /** Removed from the upstream response before it reaches the client. */
  responseHeaders: Type.Optional(Names),
}, { additionalProperties: false })

export type HeaderRemovalConfig = Static<typeof schema>
export const order = 80
