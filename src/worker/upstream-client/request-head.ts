/**
 * Serializes an upstream request head into one latin1 string: one `write` for the head
 * (and, without a body, for the whole request). Checks what undici checks, since header
 * values may come from policies and paths from rewrites: no control characters that
 * could split the head, nothing beyond latin1.
 *
 * @module
 */
import { invalidRequest, type UpstreamClientError } from './errors.js'

/** undici's checks (lib/core/request.js), kept the same. */
const INVALID_PATH = /[^\u0021-\u00ff]/
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Methods whose request carries a body by definition: an empty one is announced (as undici does). */
const EXPECTS_PAYLOAD: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH'])

/**
 * Set by the last successful `requestHead`: the body goes out with chunked framing (a body
 * without Content-Length). A module variable, not a result object: no allocation per request.
 */
export let lastChunked = false

/**
 * @param hostLine `host: <origin host>\r\n`, added unless the headers carry a Host
 * @param hasBody a body stream follows
 */
export function requestHead(method: string, path: string, headers: readonly unknown[], hostLine: string, hasBody: boolean): string | UpstreamClientError {
  if (INVALID_PATH.test(path)) return invalidRequest('invalid request path')
  let head = method + ' ' + path + ' HTTP/1.1\r\n'
  let host = false
  let length = false
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string
    const value = String(headers[i + 1])
    if (!TOKEN.test(name)) return invalidRequest(`invalid header name ${JSON.stringify(name)}`)
    if (INVALID_VALUE.test(value)) return invalidRequest(`invalid value for header ${name}`)
    // Names arrive lowercase (headers.ts); a policy's mixed case only skips this shortcut.
    if (name.length === 4 && name === 'host') host = true
    else if (name.length === 14 && name === 'content-length') length = true
    head += name + ': ' + value + '\r\n'
  }
  if (!host) head += hostLine
  let chunked = false
  if (hasBody) {
    if (!length) { head += 'transfer-encoding: chunked\r\n'; chunked = true }
  } else if (!length && EXPECTS_PAYLOAD.has(method)) {
    head += 'content-length: 0\r\n'
  }
  lastChunked = chunked
  return head + '\r\n'
}
