/**
 * Node's built-in llhttp binding (the parser node:http itself runs), typed for the
 * response side. It is strict by default (no lenient flags), parses a whole socket chunk
 * per call, and hands the head over in one callback with the fields as latin1 strings,
 * instead of undici's wasm parser with a JS callback per header field and per body piece.
 *
 * `_http_common` is not in @types/node: this is the one place that reaches it.
 *
 * @module
 */
import { createRequire } from 'node:module'

export interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** Bytes parsed, or an Error with `code` (HPE_*) and `bytesParsed`. */
  execute(data: Buffer): number | (Error & { code: string, bytesParsed: number })
  /** At EOF: completes a response framed by the connection's end, or reports a truncated one. */
  finish(): undefined | (Error & { code: string })
  /** Frees the native parser, which otherwise keeps its JS object (and callbacks) alive. */
  close(): void
  [k: number]: unknown
}

interface HTTPParserClass {
  new (): NodeHttpParser
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kLenientNone: number
}

const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser: HTTPParserClass }

export { HTTPParser }

/** On-headers-complete return values (node_http_parser.cc): 1 = the response has no body. */
export const SKIP_BODY = 1
/**
 * 2 = stop after the head (meant for upgrades): llhttp ends the message there and `execute`
 * returns the head's length, leaving the body bytes to the caller; the parser is ready for
 * the next response.
 */
export const HEAD_ONLY = 2
