/**
 * The one table of Gatehouse error codes. Every error a client or operator can see is
 * minted here: its HTTP status, its RFC 9457 problem `type` and `title`. Code elsewhere
 * branches on `code`, never on a message.
 *
 * The problem+json body of a code without per-request detail is built once, at load, so a
 * rejection on the hot path costs one lookup.
 *
 * @module
 * @example
 *   res.problem(ERRORS.GH_ERR_UPSTREAM_TIMEOUT)            // prebuilt body
 *   throw new GatehouseError('GH_ERR_CONFIG_INVALID', '3 errors')
 */

export interface ErrorSpec {
  readonly code: string
  readonly status: number
  readonly title: string
}

const PROBLEM_BASE = 'https://gatehouse.dev/problems/'

function spec(code: string, status: number, title: string): ErrorSpec {
  return { code, status, title }
}

export const ERRORS = {
  // Client request framing and limits (nothing is sent upstream).
  GH_ERR_REQUEST_MALFORMED: spec('GH_ERR_REQUEST_MALFORMED', 400, 'Malformed request'),
  GH_ERR_REQUEST_FRAMING: spec('GH_ERR_REQUEST_FRAMING', 400, 'Ambiguous request framing'),
  GH_ERR_REQUEST_TE_UNSUPPORTED: spec('GH_ERR_REQUEST_TE_UNSUPPORTED', 501, 'Unsupported transfer coding'),
  GH_ERR_REQUEST_URI_TOO_LONG: spec('GH_ERR_REQUEST_URI_TOO_LONG', 414, 'Request-target too long'),
  GH_ERR_REQUEST_HEADERS_TOO_LARGE: spec('GH_ERR_REQUEST_HEADERS_TOO_LARGE', 431, 'Request header fields too large'),
  GH_ERR_REQUEST_BODY_TOO_LARGE: spec('GH_ERR_REQUEST_BODY_TOO_LARGE', 413, 'Request body too large'),
  GH_ERR_REQUEST_TIMEOUT: spec('GH_ERR_REQUEST_TIMEOUT', 408, 'Request body not received in time'),
  GH_ERR_REQUEST_METHOD_NOT_ALLOWED: spec('GH_ERR_REQUEST_METHOD_NOT_ALLOWED', 405, 'Method not allowed'),
  // Routing.
  GH_ERR_ROUTE_NOT_FOUND: spec('GH_ERR_ROUTE_NOT_FOUND', 404, 'No route matches the request'),
  // Upstream.
  GH_ERR_UPSTREAM_REFUSED: spec('GH_ERR_UPSTREAM_REFUSED', 502, 'Upstream refused the connection'),
  GH_ERR_UPSTREAM_RESET: spec('GH_ERR_UPSTREAM_RESET', 502, 'Upstream closed the connection'),
  GH_ERR_UPSTREAM_PROTOCOL: spec('GH_ERR_UPSTREAM_PROTOCOL', 502, 'Upstream sent an invalid response'),
  GH_ERR_UPSTREAM_CONNECT_TIMEOUT: spec('GH_ERR_UPSTREAM_CONNECT_TIMEOUT', 504, 'Upstream connect timed out'),
  GH_ERR_UPSTREAM_TIMEOUT: spec('GH_ERR_UPSTREAM_TIMEOUT', 504, 'Upstream response timed out'),
  GH_ERR_UPSTREAM_UNAVAILABLE: spec('GH_ERR_UPSTREAM_UNAVAILABLE', 503, 'No healthy upstream endpoint'),
  // Policies.
  GH_ERR_POLICY_CORS_FORBIDDEN: spec('GH_ERR_POLICY_CORS_FORBIDDEN', 403, 'CORS request not allowed'),
  GH_ERR_AUTH_MISSING: spec('GH_ERR_AUTH_MISSING', 401, 'Credentials required'),
  GH_ERR_AUTH_INVALID: spec('GH_ERR_AUTH_INVALID', 401, 'Invalid credentials'),
  GH_ERR_AUTH_FORBIDDEN: spec('GH_ERR_AUTH_FORBIDDEN', 403, 'Access denied'),
  GH_ERR_AUTH_UNAVAILABLE: spec('GH_ERR_AUTH_UNAVAILABLE', 503, 'Authorization server unavailable'),
  GH_ERR_IP_FORBIDDEN: spec('GH_ERR_IP_FORBIDDEN', 403, 'Client address not allowed'),
  GH_ERR_RATE_LIMITED: spec('GH_ERR_RATE_LIMITED', 429, 'Rate limit exceeded'),
  GH_ERR_RATE_LIMIT_STORE: spec('GH_ERR_RATE_LIMIT_STORE', 503, 'Rate-limit store unavailable'),
  GH_ERR_SPIKE_QUEUE_FULL: spec('GH_ERR_SPIKE_QUEUE_FULL', 429, 'Too many requests queued'),
  GH_ERR_JSON_THREAT: spec('GH_ERR_JSON_THREAT', 400, 'JSON body exceeds a structure limit'),
  GH_ERR_JSON_INVALID: spec('GH_ERR_JSON_INVALID', 400, 'Malformed JSON body'),
  GH_ERR_POLICY_FAILED: spec('GH_ERR_POLICY_FAILED', 500, 'A policy failed'),
  // Gateway lifecycle and internals.
  GH_ERR_DRAINING: spec('GH_ERR_DRAINING', 503, 'Gateway is shutting down'),
  GH_ERR_OVERLOADED: spec('GH_ERR_OVERLOADED', 503, 'Gateway overloaded'),
  // The response had started: logged as the outcome, the client only sees the connection close.
  GH_ERR_SLOW_READER: spec('GH_ERR_SLOW_READER', 503, 'Client reads too slowly'),
  GH_ERR_INTERNAL: spec('GH_ERR_INTERNAL', 500, 'Internal gateway error'),
  // Operator-facing (config, CLI, admin); never a proxied response.
  GH_ERR_CONFIG_INVALID: spec('GH_ERR_CONFIG_INVALID', 400, 'Invalid configuration'),
  GH_ERR_ADMIN_UNAUTHORIZED: spec('GH_ERR_ADMIN_UNAUTHORIZED', 401, 'Admin token required'),
  GH_ERR_ADMIN_NOT_FOUND: spec('GH_ERR_ADMIN_NOT_FOUND', 404, 'Unknown admin endpoint'),
  GH_ERR_RELOAD_FAILED: spec('GH_ERR_RELOAD_FAILED', 500, 'Reload failed'),
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

export function problemType(code: string): string {
  return PROBLEM_BASE + code.slice('GH_ERR_'.length).toLowerCase().replaceAll('_', '-')
}

/** RFC 9457 body. `detail` is optional per-request text; never put secrets in it. */
export function problemBody(e: ErrorSpec, detail?: string, instance?: string): string {
  const body: Record<string, unknown> = { type: problemType(e.code), title: e.title, status: e.status, code: e.code }
  if (detail !== undefined) body.detail = detail
  if (instance !== undefined) body.instance = instance
  return JSON.stringify(body)
}

/** Prebuilt bodies for the common no-detail case. */
export const PROBLEM_BODIES: Readonly<Record<ErrorCode, string>> = Object.freeze(
  Object.fromEntries(Object.values(ERRORS).map((e) => [e.code, problemBody(e)])) as Record<ErrorCode, string>,
)

/** Prebuilt uWS status lines ("502 Bad Gateway"). */
const REASONS: Record<number, string> = {
  200: 'OK', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 413: 'Content Too Large', 414: 'URI Too Long', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
}
const statusLineCache = new Map<number, string>()
export function statusLine(status: number): string {
  let s = statusLineCache.get(status)
  if (s === undefined) {
    s = REASONS[status] ? `${status} ${REASONS[status]}` : String(status)
    statusLineCache.set(status, s)
  }
  return s
}

export class GatehouseError extends Error {
  readonly code: ErrorCode
  readonly status: number
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].title, options)
    this.name = 'GatehouseError'
    this.code = code
    this.status = ERRORS[code].status
  }
}
