/** header-injection options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const HeaderMap = Type.Record(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.String({
  pattern: '^[\\t\\x20-\\x7e\\x80-\\xff]*$',
  errorMessage: 'must hold only visible ASCII, spaces, tabs and Latin-1 characters',
}), {
  // uWS writes response header values verbatim: CR/LF would inject headers (docs/uws-parser-
  // findings.md §16); undici refuses any other control character, DEL or a character above
  // U+00FF in request headers, on every request.
  description: 'header name → value',
  additionalProperties: false,
})

export const schema = Type.Object({
  /** Set on the request sent upstream. */
  requestHeaders: Type.Optional(HeaderMap),
  /** Set on the response sent to the client. */
  responseHeaders: Type.Optional(HeaderMap),
  /** Replace an existing header of the same name (default) or leave it alone. */
  overwrite: Type.Optional(Type.Boolean({ default: true })),
}, { additionalProperties: false })

export type HeaderInjectionConfig = Static<typeof schema>
export const order = 81
