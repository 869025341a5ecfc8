/**
 * Access log: one JSON line per exchange, however it ended (proxied, rejected by a policy,
 * unrouted, failed upstream, aborted by the client), appended by every worker to
 * `<logging.directory>/access.log` through a buffered LogFile.
 *
 * It subscribes to `requestEnd` only while enabled, so with `accessLogs.enabled: false`
 * (or no directory) the request path pays nothing: no subscriber, `hasSubscribers` false.
 *
 * The line is built by concatenation, in a fixed field order. Numbers go in as they are;
 * strings that come from the client (path, user agent, request id) or the config (api,
 * route, consumer) are checked with one regex and only escaped through JSON.stringify
 * when they contain a quote, a backslash, a control or a non-ASCII character; the time
 * string's date part is rebuilt once per second (pino's "build constant strings once").
 * Measured on the build machine (Node 20): ~1.6 µs per typical line, against ~4.7 µs for
 * JSON.stringify of the same object plus toISOString().
 *
 * What is never logged: request or response header values other than User-Agent, and the
 * query string unless `accessLogs.includeQuery` is set, in which case the values of
 * credential-like parameters (api-key policies' parameter names, api_key, token,
 * password, ...) are replaced by [REDACTED]. So Authorization, Cookie, API keys and the
 * config's secrets (which only ever travel in headers the gateway adds) cannot appear.
 *
 * @module
 * @example
 *   configureAccessLog(snapshot, log)   // on every applied snapshot
 *   process.on('SIGUSR1', reopenAccessLog)
 */
import path from 'node:path'
import type { Snapshot } from '../config/snapshot.js'
import type { Exchange } from '../worker/exchange.js'
import { LogFile } from './log-file.js'
import * as channels from './channels.js'
import { traceparentFlags } from './tracing.js'
import type { Logger } from './runtime-log.js'

/** File name of the access log inside `logging.directory`. */
export const ACCESS_LOG_FILE = 'access.log'

/** Query parameters whose values are always redacted when the query is logged. */
const SENSITIVE_PARAMS = [
  'api_key', 'apikey', 'api-key', 'key', 'access_token', 'id_token', 'refresh_token', 'token', 'auth',
  'authorization', 'password', 'passwd', 'pwd', 'secret', 'client_secret', 'code', 'sig', 'signature',
  'session', 'sessionid', 'jwt', 'x-api-key',
]

/**
 * Bytes gathered before one write(2). Under load every write costs a thread-pool hand-off
 * and a wake-up on the worker's own CPU: with 4 KiB batches (~9 lines) that was most of
 * the access log's cost per request. 64 KiB cut it ~16x; 256 KiB took another ~0.2 µs
 * per line off in bench/micro/telemetry.mjs (1 MiB: no further gain measured). Lines still
 * leave within the LogFile's flush interval (100 ms) when traffic is light.
 */
const ACCESS_LOG_BATCH = 256 * 1024

/** A User-Agent longer than this is cut: the line must stay bounded. */
const MAX_UA = 512

const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`
}

// Per line, the pieces of the line are few and precomputed where they can be: every piece
// is a node of the string V8 must flatten when the line is encoded, and flattening costs
// per node (measured: a 35-piece line ~300 ns to flatten and encode, 8 pieces ~220 ns).

/** "000" … "999": milliseconds and fractions as one piece each. */
const DIGITS3: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'))
/** ".000" … ".999" */
const FRACTION3: readonly string[] = DIGITS3.map((d) => `.${d}`)
/** `123Z","requestId":` for each millisecond. */
const MILLIS_TO_ID: readonly string[] = DIGITS3.map((d) => `${d}Z","requestId":`)

// `{"time":"2024-05-01T12:00:00.` changes once per second; only the milliseconds change per line.
let cachedSecond = -1
let cachedHead = ''
/** `{"time":"<ISO 8601 UTC>","requestId":` of an epoch millisecond time. */
function timeHead(ms: number): string {
  const sec = Math.floor(ms / 1000)
  if (sec !== cachedSecond) {
    cachedSecond = sec
    cachedHead = `{"time":"${new Date(sec * 1000).toISOString().slice(0, 20)}`
  }
  return cachedHead + MILLIS_TO_ID[Math.floor(ms - sec * 1000)]!
}

/**
 * Milliseconds with three decimals, through integer arithmetic: V8's shortest-double
 * printing (Number#toString of 1.234) costs several times an integer's, three per line.
 * "0.050" is a valid JSON number.
 */
function ms3(x: number): string {
  const us = Math.round(x * 1000)
  if (us < 0) return String(us / 1000)
  const whole = Math.floor(us / 1000)
  return whole + FRACTION3[us - whole * 1000]!
}

/** The end of a line without consumer, policy decision or outcome (most lines). */
const PLAIN_TAIL = ',"consumer":null,"decidedBy":null,"outcome":null}\n'

/**
 * `,"api":…,"route":…` of a route (or of an API, for exchanges no route matched): config
 * values, escaped once per runtime object instead of once per line.
 */
const apiRouteParts = new WeakMap<object, string>()
function apiRoutePart(ex: Exchange): string {
  const owner = ex.route ?? ex.api
  if (owner === null) return ',"api":null,"route":null'
  let part = apiRouteParts.get(owner)
  if (part === undefined) {
    part = `,"api":${ex.api === null ? 'null' : JSON.stringify(ex.api.name)},"route":${ex.route === null ? 'null' : JSON.stringify(ex.route.id)}`
    apiRouteParts.set(owner, part)
  }
  return part
}

/** `a=1&api_key=s3cret` → `a=1&api_key=[REDACTED]` for names in `sensitive` (lowercase). */
export function redactQuery(query: string, sensitive: ReadonlySet<string>): string {
  let out = ''
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    let name = eq === -1 ? part : part.slice(0, eq)
    try { name = decodeURIComponent(name.replace(/\+/g, ' ')) } catch {}
    out += (out === '' ? '' : '&') + (eq !== -1 && sensitive.has(name.toLowerCase()) ? `${part.slice(0, eq)}=[REDACTED]` : part)
  }
  return out
}

/**
 * The access log line of an ended exchange (with its trailing newline). `query`: null to
 * leave the query out, else the set of parameter names whose values are redacted.
 *
 * Fields, in order: time (request start, ISO 8601 UTC), requestId, traceId, api, route,
 * method, path, [query], status, bytesIn, bytesOut, durationMs, upstream, upstreamStatus,
 * upstreamMs (dispatch → upstream end), upstreamHeadersMs (dispatch → response headers),
 * clientIp, userAgent, consumer, decidedBy, outcome. Absent values are null.
 */
export function formatAccessLine(ex: Exchange, query: ReadonlySet<string> | null, now = Date.now()): string {
  const duration = (ex.endedAt > 0 ? ex.endedAt : performance.now()) - ex.startedAt
  let ua: string | null = null
  // With tracing on, the traceparent it sent upstream (valid, no check needed); otherwise
  // the client's, passed through as it came, so checked before it is logged.
  const sent = ex.traceparent
  let traceId: string | null = sent === null ? null : sent.slice(3, 35)
  const h = ex.headers
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i]
    if (k === 'user-agent') { const v = h[i + 1]; if (typeof v === 'string') ua = v.length > MAX_UA ? v.slice(0, MAX_UA) : v }
    else if (sent === null && k === 'traceparent') { const v = h[i + 1]; if (typeof v === 'string' && traceparentFlags(v) >= 0) traceId = v.slice(3, 35) }
  }
  const up = ex.upstreamStartedAt
  // Not escaped, because they cannot need it: the method is one of nine uppercase tokens,
  // the client address is normalised IP text, the upstream a URL origin from the config.
  let line = timeHead(now - duration) + str(ex.requestId) +
    `,"traceId":${traceId === null ? 'null' : `"${traceId}"`}${apiRoutePart(ex)}` +
    `,"method":"${ex.method}","path":${str(ex.url)}`
  if (query !== null) line += `,"query":${ex.query === '' ? 'null' : str(redactQuery(ex.query, query))}`
  return line +
    `,"status":${ex.down.status},"bytesIn":${ex.bytesIn},"bytesOut":${ex.down.bytesOut},"durationMs":${ms3(duration)}` +
    `,"upstream":${ex.upstreamOrigin === null ? 'null' : `"${ex.upstreamOrigin}"`}` +
    `,"upstreamStatus":${ex.upstreamStatus === 0 ? 'null' : ex.upstreamStatus}` +
    `,"upstreamMs":${up > 0 && ex.upstreamEndedAt >= up ? ms3(ex.upstreamEndedAt - up) : 'null'}` +
    `,"upstreamHeadersMs":${up > 0 && ex.upstreamHeadersAt >= up ? ms3(ex.upstreamHeadersAt - up) : 'null'}` +
    `,"clientIp":"${ex.clientIp}","userAgent":${ua === null ? 'null' : str(ua)}` +
    (ex.consumer === null && ex.decidedBy === null && ex.outcome === null ? PLAIN_TAIL
      : `,"consumer":${ex.consumer === null ? 'null' : str(ex.consumer)}` +
        `,"decidedBy":${ex.decidedBy === null ? 'null' : str(ex.decidedBy)}` +
        `,"outcome":${ex.outcome === null ? 'null' : str(ex.outcome)}}\n`)
}

/** Lowercase names of the query parameters to redact: the fixed list plus api-key policies' names. */
export function sensitiveParams(snap: Snapshot): Set<string> {
  const out = new Set(SENSITIVE_PARAMS)
  for (const l of snap.listeners) {
    for (const api of l.apis) {
      for (const p of api.policies) {
        if (p.name !== 'api-key') continue
        const c = p.config as { in?: string; name?: string }
        if (c.in === 'query') out.add((c.name ?? 'api_key').toLowerCase())
      }
    }
  }
  return out
}

// ── the worker's one access log ──
let file: LogFile | null = null
let query: ReadonlySet<string> | null = null

function onRequestEnd(msg: unknown): void {
  if (file !== null) file.write(formatAccessLine(msg as Exchange, query))
}

/**
 * Applies a snapshot's access log settings: subscribe and open `<dir>/access.log` when
 * enabled with a directory, otherwise unsubscribe and close. A file that cannot be opened
 * is logged and leaves the access log off (serving goes on).
 */
export function configureAccessLog(snap: Snapshot, log: Logger): void {
  const host = snap.host
  const want = host.accessLogs && host.logDirectory !== null ? path.join(host.logDirectory, ACCESS_LOG_FILE) : null
  const old = file
  if (want === null) {
    if (old !== null) { channels.requestEnd.unsubscribe(onRequestEnd); file = null; void old.close() }
    return
  }
  if (old === null || old.path !== want) {
    try {
      file = new LogFile(want, {
        minLength: ACCESS_LOG_BATCH,
        onError: (err) => log.error('GH_ERR_LOG_WRITE', `access log ${want}: ${err.message}`),
        onDrop: (n) => log.warn('GH_WRN_LOG_DROPPED', `${n} access log lines dropped (disk too slow or failing)`, { file: want }),
      })
    } catch (err) {
      log.error('GH_ERR_LOG_OPEN', `cannot open access log ${want}: ${(err as Error).message}; access log off`)
      if (old !== null) { channels.requestEnd.unsubscribe(onRequestEnd); file = null; void old.close() }
      return
    }
    if (old !== null) void old.close()
    else channels.requestEnd.subscribe(onRequestEnd)
  }
  query = host.accessLogQuery ? sensitiveParams(snap) : null
}

/** SIGUSR1: reopen the access log (a new file after logrotate moved it). */
export function reopenAccessLog(): void {
  file?.reopen()
}

/** Lines written and dropped so far by this process (metrics may export them). */
export function accessLogStats(): { written: number; dropped: number } {
  return { written: file?.written ?? 0, dropped: file?.dropped ?? 0 }
}
