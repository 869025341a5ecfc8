/**
 * Traces: W3C trace context always goes upstream; spans only for sampled requests.
 *
 * Per request (a `requestStart` subscriber, synchronous, before the request phase):
 *  - a valid incoming `traceparent` continues its trace and its sampled flag decides
 *    (parent-based); otherwise a new trace id is drawn and the ratio decides on it,
 *    deterministically, exactly as OTel's TraceIdRatioBased sampler does (so every
 *    service with the same ratio agrees on the same trace);
 *  - the upstream gets `traceparent` (our span id, the flags) and the client's
 *    `tracestate` unchanged (dropped with an invalid traceparent, as W3C asks);
 *  - a request that is not sampled stops here: a header scan, 8 or 24 bytes from a pooled
 *    random buffer as hex, one string. No span object, `ex.trace` stays null, and the
 *    other subscribers return on that null.
 *
 * A sampled request gets a `TraceRecord` in `ex.trace`: a SERVER span for the exchange
 * and a CLIENT span per upstream attempt; the upstream's parent id is the client span's
 * id. Spans are built once, finished, at `requestEnd` from the Exchange's timings
 * (performance.now() → epoch through performance.timeOrigin) and queued for export
 * (tracing-export.ts). Policy answers become span events; rejections set status ERROR.
 *
 * @module
 */
import { randomFillSync } from 'node:crypto'
import { SpanKind, SpanStatusCode, type Attributes, type SpanContext, type SpanStatus } from '@opentelemetry/api'
import type { TimedEvent } from '@opentelemetry/sdk-trace-base'
import {
  ATTR_CLIENT_ADDRESS, ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT, ATTR_URL_FULL, ATTR_URL_PATH, ATTR_URL_SCHEME, ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions'
import type { TracingSnap } from '../config/snapshot.js'
import type { Exchange } from '../worker/exchange.js'
import { getHeader, removeHeader, type HeaderList } from '../worker/headers.js'
import type { Endpoint } from '../worker/upstream.js'
import * as channels from './channels.js'
import { FinishedSpan, Pipeline, RawTraceState, countDropped, droppedSpans, hrTimeOf } from './tracing-export.js'
import type { Logger } from './runtime-log.js'

export { tracingStats, type TracingStats } from './tracing-export.js'

// ── ids: random 32-bit words from a pooled randomFillSync (one call per 170 requests) ──
// Words, not bytes: a typed-array element load is inlined where Buffer#readUInt32BE is a
// call, and the sampler and the hex digits both read the same four trace-id words. The
// hex goes into one scratch buffer, read out as one flat latin1 string. Measured
// (Node 20, the build machine): ~110 ns for a new traceparent against ~160 ns through
// Buffer reads and toString.
const POOL_WORDS = 1024
const pool = new Uint32Array(POOL_WORDS)
let poolOff = POOL_WORDS

function take(n: number): number {
  if (poolOff + n > POOL_WORDS) { randomFillSync(pool); poolOff = 0 }
  const o = poolOff
  poolOff += n
  return o
}

// ── sampler ──
/** OTel TraceIdRatioBased: sampled when the XOR of the id's four 32-bit words < bound. */
let upperBound = 0x100000000

export function ratioBound(ratio: number): number {
  return ratio >= 1 ? 0x100000000 : ratio <= 0 ? 0 : Math.floor(ratio * 0xffffffff)
}

/** The hex trace id's words XORed (what the ratio sampler compares); exported for tests. */
export function traceIdWord(traceId: string): number {
  let acc = 0
  for (let i = 0; i < 32; i += 8) acc = (acc ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0
  return acc
}

// ── traceparent ──
const TP_BUF = Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`, 'latin1')
const HEX_CHARS = new Uint8Array(Buffer.from('0123456789abcdef', 'latin1'))

/** Writes `w` as 8 lowercase hex digits at TP_BUF[at]. */
function wordInto(at: number, w: number): void {
  for (let j = 7; j >= 0; j--) { TP_BUF[at + j] = HEX_CHARS[w & 15]!; w >>>= 4 }
}

/** A random, non-zero span id written at TP_BUF[36..52). */
function spanIdInto(): void {
  let o: number
  do o = take(2); while ((pool[o]! | pool[o + 1]!) === 0)
  wordInto(36, pool[o]!)
  wordInto(44, pool[o + 1]!)
}

/** A random, non-zero 16-hex-digit span id. */
export function newSpanId(): string {
  spanIdInto()
  return TP_BUF.toString('latin1', 36, 52)
}

/** The ratio's verdict on the trace id newTraceparent() drew last. */
let nSampled = false

/** A new trace: random trace id and span id, sampled by the ratio (nSampled). */
function newTraceparent(): string {
  let o: number
  // An all-zero trace id is invalid (2^-128: draw again).
  do o = take(4); while ((pool[o]! | pool[o + 1]! | pool[o + 2]! | pool[o + 3]!) === 0)
  const w0 = pool[o]!
  const w1 = pool[o + 1]!
  const w2 = pool[o + 2]!
  const w3 = pool[o + 3]!
  nSampled = ((w0 ^ w1 ^ w2 ^ w3) >>> 0) < upperBound
  wordInto(3, w0)
  wordInto(11, w1)
  wordInto(19, w2)
  wordInto(27, w3)
  spanIdInto()
  TP_BUF[53] = 48
  TP_BUF[54] = nSampled ? 49 : 48
  return TP_BUF.toString('latin1', 0, 55)
}

/** The caller's (valid) traceparent with our span id: same trace id and flags, version 00. */
function continuedTraceparent(incoming: string): string {
  TP_BUF.write(incoming, 0, 55, 'latin1')
  TP_BUF[0] = 48
  TP_BUF[1] = 48
  spanIdInto()
  return TP_BUF.toString('latin1', 0, 55)
}

function hexVal(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1
}

function lowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (hexVal(s.charCodeAt(i)) < 0) return false
  return true
}

function zeros(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 48) return false
  return true
}

/**
 * W3C Trace Context level 1 `traceparent`: "vv-<32 hex>-<16 hex>-ff", lowercase hex, ids
 * not all zero, version not "ff"; version 00 is exactly 55 characters, a later version
 * may carry more after a "-" (read as 00). Returns the flags, or -1 when invalid.
 * Allocates nothing.
 */
export function traceparentFlags(v: string): number {
  const n = v.length
  if (n < 55 || v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return -1
  if (!lowerHex(v, 0, 2) || (v.charCodeAt(0) === 102 && v.charCodeAt(1) === 102)) return -1
  if (v.charCodeAt(0) === 48 && v.charCodeAt(1) === 48 ? n !== 55 : n > 55 && v.charCodeAt(55) !== 45) return -1
  if (!lowerHex(v, 3, 35) || !lowerHex(v, 36, 52) || zeros(v, 3, 35) || zeros(v, 36, 52)) return -1
  const hi = hexVal(v.charCodeAt(53))
  const lo = hexVal(v.charCodeAt(54))
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo
}

/** The fields of a valid traceparent, or null (tests, tools; the request path uses traceparentFlags). */
export function parseTraceparent(v: string): { traceId: string; parentId: string; flags: number } | null {
  const flags = traceparentFlags(v)
  return flags < 0 ? null : { traceId: v.slice(3, 35), parentId: v.slice(36, 52), flags }
}

const FLAGS_HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

function traceparent(traceId: string, spanId: string, flags: number): string {
  return '00-' + traceId + '-' + spanId + '-' + FLAGS_HEX[flags & 0xff]!
}

/** Sets `traceparent`: in place when it is still where it was, else replaced. */
function putTraceparent(h: HeaderList, value: string): void {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'traceparent') { h[i + 1] = value; return }
  }
  h.push('traceparent', value)
}

// ── per sampled request ──
class ClientSpan {
  endedAt = 0
  status = 0
  code: string | null = null
  constructor(readonly spanId: string, readonly endpoint: Endpoint, readonly startedAt: number, readonly attempt: number) {}
}

/** `ex.trace` of a sampled exchange. */
export class TraceRecord {
  readonly serverSpanId = newSpanId()
  /** The id the next upstream attempt uses (already in the upstream traceparent for the first). */
  nextClientSpanId: string | null
  /** Attempts, in order; the last one may still be open (endedAt 0). */
  readonly clients: ClientSpan[] = []
  constructor(readonly traceId: string, readonly parentId: string | null, readonly flags: number,
    readonly traceState: string | null, firstClientSpanId: string) {
    this.nextClientSpanId = firstClientSpanId
  }
}

function onRequestStart(msg: unknown): void {
  const ex = msg as Exchange
  const h = ex.headers
  // One pass finds both: most requests carry neither, and then nothing is removed.
  let tp = -1
  let seen = 0
  let ts = -1
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i]
    if (k === 'traceparent') { if (seen++ === 0) tp = i + 1 }
    else if (k === 'tracestate') ts = i + 1
  }
  const incoming = tp === -1 ? undefined : h[tp]
  let flags = -1
  let value: string
  // More than one traceparent is invalid (W3C §3.2.1): start over, like a missing one.
  if (seen === 1 && typeof incoming === 'string' && (flags = traceparentFlags(incoming)) >= 0) {
    value = continuedTraceparent(incoming)
    h[tp] = value
    ex.traceparent = value
    if ((flags & 1) === 0) return
    const state = ts === -1 ? undefined : h[ts]
    ex.trace = new TraceRecord(value.slice(3, 35), incoming.slice(36, 52), flags, typeof state === 'string' && state !== '' ? state : null, value.slice(36, 52))
    return
  }
  value = newTraceparent()
  if (seen > 1) { removeHeader(h, 'traceparent'); tp = -1 }
  if (tp === -1) h.push('traceparent', value)
  else h[tp] = value
  ex.traceparent = value
  // tracestate belongs to the traceparent it came with.
  if (ts !== -1) removeHeader(h, 'tracestate')
  if (nSampled) ex.trace = new TraceRecord(value.slice(3, 35), null, 1, null, value.slice(36, 52))
}

function onUpstreamStart(msg: unknown): void {
  const e = msg as channels.UpstreamEvent
  const ex = e.ex
  const t = ex.trace as TraceRecord | null
  if (t === null) return
  let id = t.nextClientSpanId
  if (id === null) {
    // A retry: a new client span, and the upstream hears about it.
    id = newSpanId()
    putTraceparent(ex.headers, ex.traceparent = traceparent(t.traceId, id, t.flags))
  }
  t.nextClientSpanId = null
  t.clients.push(new ClientSpan(id, e.endpoint, ex.upstreamStartedAt, ex.attempts))
}

function onUpstreamEnd(msg: unknown): void {
  const e = msg as channels.UpstreamEvent
  const t = e.ex.trace as TraceRecord | null
  if (t === null || t.clients.length === 0) return
  const c = t.clients[t.clients.length - 1]!
  if (c.endedAt !== 0) return
  c.endedAt = e.ex.upstreamEndedAt
  c.status = e.statusCode
  c.code = e.code
}

function onRequestEnd(msg: unknown): void {
  const ex = msg as Exchange
  const t = ex.trace as TraceRecord | null
  if (t === null) return
  ex.trace = null
  const p = pipeline
  if (p === null) { countDropped(1 + t.clients.length); return }
  try {
    emitSpans(p, ex, t)
  } catch (err) {
    // Telemetry never takes a request (or the worker) down.
    logger?.warn('GH_WRN_TRACE_EXPORT', `span not recorded: ${(err as Error).message}`)
  }
}

// ── span building (sampled requests only) ──
const UNSET: SpanStatus = { code: SpanStatusCode.UNSET }

/** server.address / server.port of an endpoint origin, parsed once per endpoint. */
const endpointAddr = new WeakMap<Endpoint, { address: string; port: number }>()
function addrOf(ep: Endpoint): { address: string; port: number } {
  let a = endpointAddr.get(ep)
  if (a === undefined) {
    const u = new URL(ep.origin)
    a = { address: u.hostname.replace(/^\[|\]$/g, ''), port: u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 }
    endpointAddr.set(ep, a)
  }
  return a
}

function hostPort(host: string, scheme: string): number {
  const colon = host.charCodeAt(0) === 91 /* [ */ ? host.indexOf(']:') + 1 : host.lastIndexOf(':')
  if (colon > 0) {
    const n = Number(host.slice(colon + 1))
    if (Number.isInteger(n) && n > 0) return n
  }
  return scheme === 'https' ? 443 : 80
}

function emitSpans(p: Pipeline, ex: Exchange, t: TraceRecord): void {
  const endedAt = ex.endedAt !== 0 ? ex.endedAt : performance.now()
  const traceState = t.traceState === null ? undefined : new RawTraceState(t.traceState)
  const serverCtx: SpanContext = { traceId: t.traceId, spanId: t.serverSpanId, traceFlags: t.flags, traceState }
  const parent: SpanContext | undefined = t.parentId === null ? undefined
    : { traceId: t.traceId, spanId: t.parentId, traceFlags: t.flags, traceState, isRemote: true }

  // ── client spans ──
  for (let i = 0; i < t.clients.length; i++) {
    const c = t.clients[i]!
    const a = addrOf(c.endpoint)
    const attrs: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: ex.method,
      [ATTR_SERVER_ADDRESS]: a.address,
      [ATTR_SERVER_PORT]: a.port,
      [ATTR_URL_FULL]: c.endpoint.origin + c.endpoint.pathPrefix + ex.upstreamPath,
      [ATTR_NETWORK_PROTOCOL_VERSION]: '1.1',
    }
    if (c.attempt > 1) attrs[ATTR_HTTP_REQUEST_RESEND_COUNT] = c.attempt - 1
    if (c.status !== 0) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = c.status
    let status = UNSET
    const code = c.endedAt === 0 ? ex.outcome : c.code
    if (code !== null) {
      attrs[ATTR_ERROR_TYPE] = code
      status = { code: SpanStatusCode.ERROR, message: code }
    } else if (c.status >= 400) {
      attrs[ATTR_ERROR_TYPE] = String(c.status)
      status = { code: SpanStatusCode.ERROR }
    }
    p.add(new FinishedSpan(p, ex.method, SpanKind.CLIENT, { traceId: t.traceId, spanId: c.spanId, traceFlags: t.flags, traceState },
      serverCtx, c.startedAt, c.endedAt !== 0 ? c.endedAt : endedAt, attrs, status, null))
  }

  // ── server span ──
  const fwdProto = getHeader(ex.headers, 'x-forwarded-proto')
  const scheme = fwdProto === 'https' ? 'https' : 'http'
  const route = ex.route?.id
  const attrs: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: ex.method,
    [ATTR_URL_PATH]: ex.url,
    [ATTR_URL_SCHEME]: scheme,
    [ATTR_SERVER_ADDRESS]: ex.hostname,
    [ATTR_SERVER_PORT]: hostPort(ex.host, scheme),
    [ATTR_CLIENT_ADDRESS]: ex.clientIp,
    [ATTR_NETWORK_PROTOCOL_VERSION]: '1.1',
    'gatehouse.request_id': ex.requestId,
  }
  if (route !== undefined) attrs[ATTR_HTTP_ROUTE] = route
  if (ex.api !== null) attrs['gatehouse.api'] = ex.api.name
  const ua = getHeader(ex.headers, 'user-agent')
  if (typeof ua === 'string') attrs[ATTR_USER_AGENT_ORIGINAL] = ua
  const st = ex.down.status
  if (st !== 0) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = st
  if (ex.outcome !== null) attrs['gatehouse.outcome'] = ex.outcome

  let status = UNSET
  let events: TimedEvent[] | null = null
  if (ex.decidedBy !== null) {
    const rejected = st >= 400 || st === 0
    const ev: Attributes = { 'gatehouse.policy': ex.decidedBy, 'http.response.status_code': st }
    if (ex.outcome !== null) ev['gatehouse.error.code'] = ex.outcome
    events = [{ name: rejected ? 'gatehouse.policy.rejected' : 'gatehouse.policy.answered', time: hrTimeOf(endedAt), attributes: ev }]
    if (rejected) {
      status = { code: SpanStatusCode.ERROR, message: `${ex.decidedBy}: ${ex.outcome ?? st}` }
      attrs[ATTR_ERROR_TYPE] = ex.outcome ?? String(st)
    }
  } else if (st >= 500 || (ex.outcome !== null && ex.outcome !== 'client-abort')) {
    // Server spans: 5xx (and a gateway error code) are errors; a 4xx is the client's.
    status = { code: SpanStatusCode.ERROR, message: ex.outcome ?? undefined }
    attrs[ATTR_ERROR_TYPE] = ex.outcome ?? String(st)
  }
  const name = route !== undefined ? ex.method + ' ' + route : ex.method
  p.add(new FinishedSpan(p, name, SpanKind.SERVER, serverCtx, parent, ex.startedAt, endedAt, attrs, status, events))
}

// ── wiring ──
let pipeline: Pipeline | null = null
let subscribed = false
let current = ''
let logger: Logger | null = null
let lastWarn = 0
const WARN_EVERY_MS = 30_000

function onExportFailure(error: Error | undefined): void {
  const now = Date.now()
  if (now - lastWarn < WARN_EVERY_MS) return
  lastWarn = now
  logger?.warn('GH_WRN_TRACE_EXPORT', `trace export failed: ${error?.message ?? 'unknown error'}; spans are dropped until the collector answers`,
    { droppedSpans: droppedSpans() })
}

function subscribe(on: boolean): void {
  if (on === subscribed) return
  subscribed = on
  const f = on ? 'subscribe' : 'unsubscribe'
  channels.requestStart[f](onRequestStart)
  channels.upstreamStart[f](onUpstreamStart)
  channels.upstreamEnd[f](onUpstreamEnd)
  channels.requestEnd[f](onRequestEnd)
}

export interface ConfigureOptions {
  log?: Logger
  /** Pipeline tuning for tests (batch delay, queue size). */
  pipeline?: { maxQueue?: number; maxBatch?: number; delayMs?: number; timeoutMs?: number }
}

/**
 * Applies the tracing settings of a snapshot; a no-op when they did not change. Disabled:
 * unsubscribes (the request path pays nothing; a client's traceparent passes through as an
 * ordinary header). The previous pipeline is flushed and closed in the background.
 */
export function configureTracing(s: TracingSnap, opts: ConfigureOptions = {}): void {
  if (opts.log !== undefined) logger = opts.log
  const key = s.enabled ? JSON.stringify(s) : ''
  if (key === current) return
  current = key
  const old = pipeline
  pipeline = null
  if (old !== null) void old.shutdown()
  if (!s.enabled) { subscribe(false); return }
  upperBound = ratioBound(s.sampling)
  try {
    pipeline = new Pipeline({
      endpoint: s.endpoint,
      serviceName: s.serviceName,
      resourceAttributes: s.resourceAttributes,
      headers: s.headers,
      onFailure: onExportFailure,
      ...opts.pipeline,
    })
  } catch (err) {
    // Context still propagates; spans have nowhere to go and are counted as dropped.
    logger?.warn('GH_WRN_TRACE_EXPORT', `trace exporter not created: ${(err as Error).message}`)
  }
  subscribe(true)
}

/** Exports what is queued (at drain); bounded by the exporter timeout. */
export function flushTracing(): Promise<void> {
  return pipeline === null ? Promise.resolve() : pipeline.flush()
}
