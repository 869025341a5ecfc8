/**
 * The per-request pipeline of a worker: copy the request out of uWS, enforce limits and
 * framing, route, run the request phase, then proxy. Everything here runs for every
 * request, so it allocates one Exchange, one header list and nothing avoidable: the
 * header walk uses a module-level callback and scratch state instead of a per-request
 * closure (uWS calls `forEach` synchronously, and a worker is single-threaded).
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import * as channels from '../telemetry/channels.js'
import { isIPv6 } from 'node:net'
import type { ErrorCode } from '../errors.js'
import { Downstream } from './downstream.js'
import { Exchange } from './exchange.js'
import { HOP_BY_HOP, removeConnectionTokens, type HeaderList } from './headers.js'
import { problem } from './local-response.js'
import { RequestBody, forward, sendLocal, type ExchangeHooks } from './proxy.js'
import { findApi, selectRoute, type Runtime } from './runtime.js'
import { RETRY_AFTER, type OverloadGuard } from './overload.js'
import { runRequestPhase } from './chain.js'
import type { LocalResponse } from './policies/types.js'
import { remoteAddress, type RequestHandler, type UwsHttpRequest, type UwsHttpResponse } from './uws.js'

export interface WorkerState {
  runtime: Runtime | null
  draining: boolean
  inFlight: number
  hooks: ExchangeHooks
  /** Load shedding: a request is shed while inFlight >= overload.admitLimit. */
  overload: OverloadGuard
}

// ── scratch state for the header walk (reset per request) ──
let sHeaders: HeaderList = []
let sBytes = 0
let sCount = 0
let sClCount = 0
let sCl = ''
let sTe: string | null = null
let sTeCount = 0
let sHost = ''
let sHostCount = 0
let sConnection: string | null = null
let sXff: string | null = null
let sXfProto: string | null = null
let sRequestId: string | null = null
let sBadValue: string | null = null

/**
 * What undici refuses in a header value (its headerCharRegex, from Node's _http_common).
 * uWS hangs up on most control characters itself (findings §6), but DEL and bytes that are
 * not UTF-8 (which reach JS as U+FFFD) get through; undici would throw when building the
 * upstream request, and that failed dispatch leaves its pool client marked busy for good:
 * after connectionsPerEndpoint of them the worker queued every request to the endpoint
 * forever. So they are refused here, with a 400, before anything is dispatched.
 */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/

function collectHeader(k: string, v: string): void {
  sCount++
  sBytes += k.length + v.length + 4
  if (INVALID_VALUE.test(v)) { sBadValue = k; return }
  switch (k) {
    case 'content-length': sClCount++; sCl = v; return
    case 'transfer-encoding': sTeCount++; sTe = v; return
    case 'host': sHostCount++; sHost = v; return
    // uWS answered "100 Continue" itself already (findings §12); the upstream must not again.
    case 'expect': return
    case 'connection': sConnection = v; return
    case 'x-forwarded-for': sXff = v; return
    case 'x-forwarded-proto': sXfProto = v; return
    case 'x-forwarded-host': return
    case 'x-request-id': sRequestId = v; break
  }
  // Hop-by-hop, and every Proxy-* header: they are for this hop, never the upstream.
  if (HOP_BY_HOP.has(k) || (k.charCodeAt(0) === 112 /* p */ && k.startsWith('proxy-'))) return
  sHeaders.push(k, v)
}

/** uWS frames at most 9 Content-Length digits and aborts the connection beyond (findings §7). */
const CONTENT_LENGTH = /^[0-9]{1,9}$/
const ALL_DIGITS = /^[0-9]+$/

/** uWS lowercases methods (findings §10) and passes only these nine. */
const METHODS: Readonly<Record<string, string>> = {
  get: 'GET', head: 'HEAD', post: 'POST', put: 'PUT', delete: 'DELETE', options: 'OPTIONS', patch: 'PATCH',
  trace: 'TRACE', connect: 'CONNECT',
}

/** uWS gives addresses in full text form; un-map IPv4 and compress IPv6 for logs, ACLs and X-Forwarded-For. */
const MAPPED_V4 = '0000:0000:0000:0000:0000:ffff:'
function normalizeAddress(a: string): string {
  if (a.indexOf(':') === -1) return a
  if (a.startsWith(MAPPED_V4)) {
    const hi = parseInt(a.slice(30, 34), 16)
    const lo = parseInt(a.slice(35, 39), 16)
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  return new URL(`http://[${a}]/`).hostname.slice(1, -1)
}

/**
 * Rejects a request before routing, and closes the connection. The answer is deferred one
 * turn on purpose: uWS keeps parsing the bytes after a request even when we end it with
 * close, so a request smuggled behind a bad Content-Length would be dispatched
 * (findings §6). With our response still pending, uWS instead kills the connection when
 * that next request appears (findings §11) and nothing behind the bad framing is served.
 */
function reject(down: Downstream, code: ErrorCode, detail?: string, headers: HeaderList | null = null): void {
  const r = problem(code, detail, headers)
  down.closeConnection = true
  // Telemetry still sees these requests (metrics, access log): as an Exchange without an
  // API, built only when someone listens, from what onRequest copied so far.
  const ex = channels.requestEnd.hasSubscribers && eRuntime !== null
    ? new Exchange(eRuntime, NO_HOOKS, down, eMethod, eUrl, eQuery, sHeaders, sHost, eIp(down), '-', 0, false)
    : null
  setImmediate(() => {
    down.respond(r.status, r.headers, r.body, r.contentType)
    if (ex !== null) { ex.outcome = code; ex.ended = true; ex.endedAt = performance.now(); channels.requestEnd.publish(ex) }
  })
}

// What onRequest knows when it rejects (set before the first check; for telemetry only).
let eRuntime: Runtime | null = null
let eMethod = ''
let eUrl = ''
let eQuery = ''
const NO_HOOKS: ExchangeHooks = { done() {} }
function eIp(down: Downstream): string {
  try { return normalizeAddress(remoteAddress(down.res)) } catch { return '' }
}

export function makeRequestHandler(state: WorkerState, listenerKey: string): RequestHandler {
  return function onRequest(res: UwsHttpResponse, req: UwsHttpRequest): void {
    const down = new Downstream(res)
    eRuntime = null
    const rt = state.runtime
    const lr = rt === null ? undefined : rt.listeners.get(listenerKey)
    if (rt === null || lr === undefined) { reject(down, 'GH_ERR_DRAINING'); return }
    down.sendTimeoutMs = lr.sendTimeoutMs

    const method = METHODS[req.getMethod()] ?? req.getMethod().toUpperCase()
    const url = req.getUrl()
    const query = req.getQuery() ?? '' // this build returns undefined when there is no query
    sHeaders = []; sBytes = 0; sCount = 0; sClCount = 0; sCl = ''; sTe = null; sTeCount = 0; sHost = ''; sHostCount = 0
    sConnection = null; sXff = null; sXfProto = null; sRequestId = null; sBadValue = null
    req.forEach(collectHeader)
    eRuntime = rt; eMethod = method; eUrl = url; eQuery = query
    // Load shedding (overload.ts): the one comparison an admitted request pays for it.
    if (state.inFlight >= state.overload.admitLimit) { state.overload.onShed(); reject(down, 'GH_ERR_OVERLOADED', undefined, RETRY_AFTER); return }
    // Locals re-typed: TS cannot see that forEach's callback assigned the scratch state.
    const headers = sHeaders
    const te = sTe as string | null
    const xff = sXff as string | null
    const xfProto = sXfProto as string | null
    const connection = sConnection as string | null
    const limits = rt.limits

    // ── limits and framing: nothing reaches an upstream past these ──
    if (url.length + (query === '' ? 0 : query.length + 1) > limits.maxUrlBytes) { reject(down, 'GH_ERR_REQUEST_URI_TOO_LONG'); return }
    if (sCount > limits.maxHeaderCount) { reject(down, 'GH_ERR_REQUEST_HEADERS_TOO_LARGE', `more than ${limits.maxHeaderCount} header fields`); return }
    if (sBytes > limits.maxHeaderBytes) { reject(down, 'GH_ERR_REQUEST_HEADERS_TOO_LARGE', `header section larger than ${limits.maxHeaderBytes} bytes`); return }
    if (method === 'TRACE' || method === 'CONNECT') { reject(down, 'GH_ERR_REQUEST_METHOD_NOT_ALLOWED', `${method} is not proxied`); return }
    if (sBadValue !== null) { reject(down, 'GH_ERR_REQUEST_MALFORMED', `invalid character in the value of ${sBadValue}`); return }
    if (sHostCount !== 1 || sHost === '') { reject(down, 'GH_ERR_REQUEST_MALFORMED', 'exactly one non-empty Host header is required'); return }
    let contentLength = 0
    let hasBody = false
    if (te !== null) {
      if (sClCount > 0) { reject(down, 'GH_ERR_REQUEST_FRAMING', 'both Content-Length and Transfer-Encoding'); return }
      if (sTeCount > 1) { reject(down, 'GH_ERR_REQUEST_FRAMING', 'more than one Transfer-Encoding'); return }
      if (te.toLowerCase() !== 'chunked') { reject(down, 'GH_ERR_REQUEST_TE_UNSUPPORTED', 'only Transfer-Encoding: chunked is supported'); return }
      contentLength = -1
      hasBody = true
      // uWS's chunk parser has quirks JS cannot see (findings §4): never reuse such a connection.
      down.closeConnection = true
    } else if (sClCount > 0) {
      if (sClCount > 1) { reject(down, 'GH_ERR_REQUEST_FRAMING', 'more than one Content-Length'); return }
      if (!CONTENT_LENGTH.test(sCl)) {
        if (ALL_DIGITS.test(sCl)) reject(down, 'GH_ERR_REQUEST_BODY_TOO_LARGE', 'Content-Length above 999999999; send larger bodies chunked')
        else reject(down, 'GH_ERR_REQUEST_FRAMING', 'invalid Content-Length')
        return
      }
      contentLength = Number(sCl)
      hasBody = contentLength > 0
      headers.push('content-length', sCl)
    }

    // ── routing ──
    const api = findApi(lr, url)
    if (api === null) { reject(down, 'GH_ERR_ROUTE_NOT_FOUND'); return }
    if (contentLength > api.maxRequestBodyBytes) { reject(down, 'GH_ERR_REQUEST_BODY_TOO_LARGE', `limit is ${api.maxRequestBodyBytes} bytes`); return }

    if (connection !== null) removeConnectionTokens(headers, connection)
    const ip = normalizeAddress(remoteAddress(res))
    const trusted = rt.trustedProxies !== null && rt.trustedProxies.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4')
    headers.push('x-forwarded-for', trusted && xff !== null ? `${xff}, ${ip}` : ip)
    headers.push('x-forwarded-proto', trusted && xfProto !== null ? xfProto : lr.proto)
    headers.push('x-forwarded-host', sHost)
    let requestId = sRequestId as string | null
    if (requestId === null) { requestId = randomUUID(); headers.push('x-request-id', requestId) }
    if (api.preserveHost) headers.push('host', sHost)

    const ex = new Exchange(rt, state.hooks, down, method, url, query, headers, sHost, ip, requestId, contentLength, hasBody)
    ex.api = api
    ex.path = api.basePath === '' ? url : (url.slice(api.basePath.length) || '/')
    state.inFlight++
    // uWS hands body chunks right after this handler returns: the reader must exist now.
    // An API with body inspectors holds bodies until they passed (RequestBody hold mode).
    if (hasBody) {
      const bufferAll = contentLength > 0 && contentLength <= limits.requestBufferBytes
      ex.body = new RequestBody(res, ex, api.maxRequestBodyBytes, api.chain.body !== null || bufferAll, lr.bodyIdleTimeoutMs, bufferAll)
    }

    if (!selectRoute(api, ex)) { sendLocal(ex, problem('GH_ERR_ROUTE_NOT_FOUND')); return }
    if (channels.requestStart.hasSubscribers) channels.requestStart.publish(ex)

    const chain = api.chain.request
    if (chain === null) { forward(ex); return }
    const r = runRequestPhase(chain, ex)
    if (r === undefined) { forward(ex); return }
    if (!(r instanceof Promise)) { sendLocal(ex, r); return }
    r.then((v: LocalResponse | undefined) => (v === undefined ? forward(ex) : sendLocal(ex, v)),
      () => sendLocal(ex, problem('GH_ERR_POLICY_FAILED')))
  }
}
