/**
 * The upstream leg of an exchange: one dispatch per attempt with undici's old-style handler
 * contract (onConnect/onHeaders/onData/onComplete/onError), which both upstream clients
 * speak (upstream-client/ for http://, undici for https://). This adapter is the only code
 * that knows that API.
 *
 * Backpressure both ways:
 *  - down: `onData` returns the Downstream's write result; false pauses the upstream
 *    client, and Downstream's `onDrain` calls the `resume` it gave us;
 *  - up: the request body is a Readable fed by uWS `onData`; when its buffer is full the
 *    client connection is paused, and the upstream client's next `read()` resumes it.
 *
 * @module
 */
import { Readable } from 'node:stream'
import * as channels from '../telemetry/channels.js'
import { IDEMPOTENT, type DispatchHandler } from './upstream-client/dispatch.js'
import type { Exchange } from './exchange.js'
import type { DownstreamListener } from './downstream.js'
import { HOP_BY_HOP, removeConnectionTokens, type HeaderList } from './headers.js'
import { isConnectFailure, tooManyResponseHeaders, upstreamErrorCode, type Endpoint } from './upstream.js'
import { bodyInspectors, runResponsePhase } from './chain.js'
import { problem } from './local-response.js'
import type { BodyInspector, LocalResponse } from './policies/types.js'
import type { UwsHttpResponse } from './uws.js'
import { copyChunk } from './uws.js'
import { takeChunk } from './body-chunks.js'
import { watchBody, type WatchedBody } from './client-timeouts.js'
import { slowReaderCut } from './slow-readers.js'
import type { ErrorCode } from '../errors.js'

const NON_ASCII = /[^\x00-\x7f]/
/** Response headers we never forward: hop-by-hop, and framing that uWS writes itself. */
const DROP_RESPONSE = new Set([...HOP_BY_HOP, 'content-length', 'date'])

export interface ExchangeHooks {
  /** Called exactly once when the exchange ends, however it ends. */
  done(ex: Exchange, outcome: string | null): void
}

/** Sends a gateway-made response and ends the exchange. */
export function sendLocal(ex: Exchange, r: LocalResponse): void {
  const d = ex.down
  // The client left (an async policy answered too late): the exchange still ends here.
  if (!d.live) { ex.hooks.done(ex, 'client-abort'); return }
  if (d.headersSent) { d.abort(); ex.hooks.done(ex, r.code); return }
  if (ex.hasBody) d.closeConnection = true // the unread request body is not worth draining
  const extra = ex.extraResponseHeaders
  d.respond(r.status, extra === null ? r.headers : r.headers === null ? extra : [...r.headers, ...extra], r.body, r.contentType)
  ex.hooks.done(ex, r.code)
}

/**
 * Sends the exchange to an endpoint of its service. A bodied request waits for its first
 * body bytes (see RequestBody.startWhenReady); a held body (the API has body inspectors)
 * waits until the inspectors that apply to this request passed all of it.
 */
export function forward(ex: Exchange): void {
  if (!ex.down.live) { ex.hooks.done(ex, 'client-abort'); return }
  const ep = ex.service!.pick(null)
  if (ep === null) { sendLocal(ex, problem('GH_ERR_UPSTREAM_UNAVAILABLE')); return }
  const call = new UpstreamCall(ex, ep)
  const body = ex.body
  if (body === null) call.start()
  else if (body.holding) body.inspectWith(ex.api!.chain.body === null ? [] : bodyInspectors(ex.api!.chain.body, ex))
  else body.startWhenReady()
}

/**
 * The request body as a Readable the upstream client streams upstream. Created synchronously in
 * the uWS handler (uWS delivers body chunks right after the handler returns).
 *
 * Hold mode (`hold`: the API has body inspectors, e.g. json-threat-protection): chunks are
 * copied into `held` instead of the Readable, and the client is never paused (every byte
 * must arrive to be checked; memory is bounded by the body limit, which still answers
 * 413). Chunks that arrive during an async request phase wait there; `inspectWith` (from
 * `forward`) feeds them to the inspectors, then every later chunk as it arrives. Only when
 * the last chunk passed every inspector's `write` and `end` are the held chunks pushed and
 * the upstream call started; a rejection answers locally and nothing goes upstream. When
 * no inspector applies to the request, the held chunks are pushed and the body streams as
 * in normal mode, unless `bufferAll` (a small body, limits.requestBufferBytes): then the
 * whole body is held, as if by an inspector that passes everything, before the upstream
 * call starts. Normal mode pays one null check per chunk for all this.
 */
export class RequestBody extends Readable implements WatchedBody {
  private paused = false
  /** The last chunk arrived. */
  private complete = false
  lastDataAt = 0
  private overLimit = false
  /** First body bytes (or the end) seen: uWS has framed at least one chunk correctly. */
  private started = false
  /** ex.call is waiting for `started`. */
  private startPending = false
  /** Hold mode: the copied chunks not yet pushed; null when streaming. */
  private held: Buffer[] | null
  /** Hold mode: the last chunk arrived. */
  private heldLast = false
  /** Hold mode: the inspectors, set once the request phase passed. */
  private inspectors: BodyInspector[] | null = null
  /** Hold mode: how many held chunks the inspectors have seen. */
  private inspected = 0

  /**
   * @param hold the API has body inspectors, or `bufferAll`
   * @param bufferAll read the whole body before the upstream request starts (small bodies,
   *   limits.requestBufferBytes): a slow client then never holds an upstream connection
   */
  constructor(private readonly res: UwsHttpResponse, private readonly ex: Exchange, private readonly limit: number, hold: boolean,
    readonly idleTimeoutMs: number, private readonly bufferAll = false) {
    super({ highWaterMark: 64 * 1024 })
    this.held = hold ? [] : null
    res.onData(this.onData)
    watchBody(this)
  }

  // ── WatchedBody (client-timeouts.ts) ──
  get settled(): boolean { return this.complete || this.overLimit || this.destroyed || !this.ex.down.live }
  get pausedByUs(): boolean { return this.paused }
  refreshSocketTimer(): void {
    if (!this.paused && this.ex.down.live) { this.res.pause(); this.res.resume() }
  }
  timedOut(): void {
    if (this.settled) return
    // Answer first: the cancellation below must find the exchange already decided.
    sendLocal(this.ex, problem('GH_ERR_REQUEST_TIMEOUT', `no request body bytes for ${this.idleTimeoutMs} ms`))
    this.destroy()
    this.ex.call?.cancel()
  }

  /** The body is held for inspection (see the class comment). */
  get holding(): boolean { return this.held !== null }

  private onData = (ab: ArrayBuffer, isLast: boolean): void => {
    // After the response ended or the client left, uWS may still deliver chunks (§3.14).
    if (this.overLimit || this.destroyed || !this.ex.down.live) return
    const n = ab.byteLength
    this.ex.bytesIn += n
    // Exact, not coarseNow: a stale stamp would cut a client up to one sweep early.
    this.lastDataAt = performance.now()
    if (isLast) this.complete = true
    if (this.ex.bytesIn > this.limit) {
      this.overLimit = true
      this.held = null
      // Answer first: the cancellation below must find the exchange already decided.
      sendLocal(this.ex, problem('GH_ERR_REQUEST_BODY_TOO_LARGE', `limit is ${this.limit} bytes`))
      this.destroy()
      this.ex.call?.cancel()
      return
    }
    const held = this.held
    if (held !== null) {
      // Copied (§3.5), never pushed yet, never a pause: see the class comment.
      if (n > 0) held.push(copyChunk(ab))
      if (isLast) this.heldLast = true
      if (this.inspectors !== null) this.inspect()
      return
    }
    const more = n === 0 || this.push(takeChunk(ab))
    if (!this.started && (n > 0 || isLast)) {
      this.started = true
      if (this.startPending) { this.startPending = false; this.ex.call?.start() }
    }
    if (isLast) { this.push(null); return }
    if (!more && !this.paused) { this.paused = true; this.ex.down.readPaused = true; this.res.pause() }
  }

  /**
   * Hold mode, called once by `forward` after the request phase: inspect what arrived so
   * far and everything after; with no inspector for this request, stream as usual.
   */
  inspectWith(inspectors: BodyInspector[]): void {
    if (inspectors.length === 0 && !this.bufferAll) { this.release(); return }
    this.inspectors = inspectors
    this.inspect()
  }

  private inspect(): void {
    const held = this.held!
    const ins = this.inspectors!
    let r: LocalResponse | undefined
    try {
      for (; this.inspected < held.length; this.inspected++) {
        const chunk = held[this.inspected]!
        for (let k = 0; k < ins.length; k++) if ((r = ins[k]!.write(chunk)) !== undefined) break
        if (r !== undefined) break
      }
      if (r === undefined) {
        if (!this.heldLast) return
        for (let k = 0; k < ins.length; k++) if ((r = ins[k]!.end()) !== undefined) break
      }
    } catch {
      // Runs inside a uWS callback: a throwing inspector must not take the worker down.
      r = problem('GH_ERR_POLICY_FAILED')
    }
    if (r !== undefined) {
      this.held = null
      this.inspectors = null
      sendLocal(this.ex, r) // closes the connection: the rest of the body is not read
      this.destroy()
      return
    }
    this.release()
  }

  /** Leaves hold mode: the held chunks go to the Readable, and the upstream call may start. */
  private release(): void {
    const held = this.held!
    this.held = null
    this.inspectors = null
    let more = true
    for (let i = 0; i < held.length; i++) more = this.push(held[i]!)
    if (this.heldLast) this.push(null)
    else if (!more) { this.paused = true; this.ex.down.readPaused = true; this.res.pause() }
    if (held.length > 0 || this.heldLast) this.started = true
    this.startWhenReady()
  }

  /**
   * Starts `ex.call` once the first body bytes arrived. The upstream request waits for
   * this so a body uWS rejects (bad chunk size, bad Content-Length: it aborts after our
   * handler ran, findings §4 and §7) never reaches an upstream. uWS's leading empty onData
   * call does not count.
   */
  startWhenReady(): void {
    if (this.started) this.ex.call?.start()
    else this.startPending = true
  }

  override _read(): void {
    if (this.paused && this.ex.down.live) { this.paused = false; this.ex.down.readPaused = false; this.res.resume() }
  }
}

/**
 * One upstream attempt. It is also the attempt's telemetry message (channels.UpstreamEvent):
 * publishing `this` costs no allocation per publish point.
 */
export class UpstreamCall implements DispatchHandler, DownstreamListener, channels.UpstreamEvent {
  statusCode = 0
  error: (Error & { code?: string }) | null = null
  code: string | null = null
  private abortUpstream: ((err?: Error) => void) | null = null
  private resumeUpstream: (() => void) | null = null
  private gotHeaders = false
  private finished = false
  private dispatched = false
  /** This call holds its endpoint's connection paused for a lagging client (Endpoint.pausedByClients). */
  private pausedByClient = false
  /** Why the gateway cut the client, when it did (the exchange's outcome). */
  private cutCode: ErrorCode | null = null

  private readonly body: RequestBody | null

  constructor(readonly ex: Exchange, readonly endpoint: Endpoint) {
    this.body = ex.body
    ex.call = this
    ex.down.listener = this
  }

  start(): void {
    if (this.dispatched || !this.ex.down.live) return
    const ex = this.ex
    this.dispatched = true
    this.endpoint.active++
    ex.attempts++
    ex.upstreamOrigin = this.endpoint.origin
    // Timings are read at the end of the exchange, by whoever listens there (every consumer does).
    if (channels.requestEnd.hasSubscribers) ex.upstreamStartedAt = performance.now()
    if (channels.upstreamStart.hasSubscribers) channels.upstreamStart.publish(this)
    const path = this.endpoint.pathPrefix + ex.upstreamPath + (ex.query === '' ? '' : '?' + ex.query)
    this.endpoint.pool.dispatch({
      path,
      method: ex.method,
      headers: ex.headers,
      body: this.body,
    }, this)
  }

  // ── undici (legacy handler API) ──
  onConnect(abort: (err?: Error) => void): void {
    if (!this.ex.down.live) { abort(); return }
    this.abortUpstream = abort
  }

  onHeaders(statusCode: number, raw: Buffer[] | string[] | null, resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true // 1xx: undici handles 100-continue; nothing to forward
    // The field count limit (undici only bounds bytes). Nothing went to the client yet: the
    // abort destroys the upstream socket and reaches onError synchronously, which answers 502.
    const maxFields = this.ex.service!.snap.maxResponseHeaderCount
    if (raw !== null && raw.length > 2 * maxFields) {
      this.abortUpstream?.(tooManyResponseHeaders(raw.length / 2, maxFields))
      return false
    }
    const ex = this.ex
    this.resumeUpstream = resume
    this.gotHeaders = true
    ex.upstreamStatus = statusCode
    this.statusCode = statusCode
    if (channels.requestEnd.hasSubscribers) ex.upstreamHeadersAt = performance.now()
    if (channels.upstreamHeaders.hasSubscribers) channels.upstreamHeaders.publish(this)
    const svc = ex.service!.snap
    if (statusCode >= 502 && statusCode <= 504) this.endpoint.recordFailure(svc, Date.now())
    else this.endpoint.recordSuccess()
    if (!ex.down.live) return false
    const headers: HeaderList = []
    let contentLength = -1
    let connection: string | null = null
    if (raw !== null) {
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toString().toLowerCase()
        const value = raw[i + 1]!
        if (name === 'content-length') { contentLength = Number(value.toString()); continue }
        if (name === 'connection') { connection = value.toString(); continue }
        if (DROP_RESPONSE.has(name)) continue
        // No copy of a Buffer (undici): the values are written to uWS (which copies them)
        // with the first body bytes or at the end of this parse at the latest
        // (Downstream.start), and they are views of a socket chunk nothing reuses. A string
        // (llhttp: latin1) with bytes above 0x7f goes as bytes: uWS would encode it as UTF-8.
        headers.push(name, typeof value === 'string' && NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value)
      }
    }
    if (connection !== null) removeConnectionTokens(headers, connection)
    if (ex.extraResponseHeaders !== null) headers.push(...ex.extraResponseHeaders)
    ex.responseHeaders = headers
    const chain = ex.api!.chain.response
    if (chain !== null) runResponsePhase(chain, ex)
    const noBody = ex.method === 'HEAD' || statusCode === 204 || statusCode === 304
    ex.down.start(statusCode, statusText || null, headers, contentLength, noBody)
    return true
  }

  onData(chunk: Buffer): boolean {
    const d = this.ex.down
    if (d.chunk(chunk) || d.mayBuffer()) return true
    // The client lags and the buffers are full: hold the upstream connection (pause), but
    // never more than half of the endpoint's pool, so slow readers (slowhttptest -X) cannot
    // take every connection to a service. Past that, this client is cut.
    if (this.pausedByClient) return false
    if (this.endpoint.pausedByClients < this.endpoint.maxPausedByClients) {
      this.pausedByClient = true
      this.endpoint.pausedByClients++
      return false
    }
    this.cutCode = 'GH_ERR_SLOW_READER'
    slowReaderCut(this.ex, this.endpoint.origin, this.endpoint.pausedByClients)
    d.abort() // → onAborted → onClientAbort: the upstream request is cancelled
    return false
  }

  onComplete(): void {
    this.settle()
    if (channels.requestEnd.hasSubscribers) this.ex.upstreamEndedAt = performance.now()
    if (channels.upstreamEnd.hasSubscribers) channels.upstreamEnd.publish(this)
    this.ex.down.finish()
    this.ex.hooks.done(this.ex, null)
  }

  onError(err: Error & { code?: string }): void {
    this.settle()
    if (channels.requestEnd.hasSubscribers) this.ex.upstreamEndedAt = performance.now()
    if (channels.upstreamEnd.hasSubscribers) { this.error = err; this.code = upstreamErrorCode(err); channels.upstreamEnd.publish(this) }
    const ex = this.ex
    const d = ex.down
    const svc = ex.service!
    const code = upstreamErrorCode(err)
    // Counted even when the client already left: an endpoint that black-holes connects must
    // be ejected although impatient clients give up first. Our own aborts (client gone,
    // body limit) map to codes that are not the endpoint's and are not counted.
    this.endpoint.recordError(svc.snap, code, Date.now())
    if (!d.live) { this.ex.hooks.done(ex, this.cutCode ?? 'client-abort'); return }
    if (this.gotHeaders) {
      // Headers already went out: the only honest signal left is closing the connection.
      d.abort()
      this.ex.hooks.done(ex, code)
      return
    }
    // Only a request never written may go elsewhere, and only an idempotent, body-less one.
    if (isConnectFailure(err) && IDEMPOTENT.has(ex.method) && !ex.hasBody && ex.attempts <= svc.snap.retries) {
      const tried = ex.tried ?? (ex.tried = [])
      tried.push(this.endpoint)
      const next = svc.pick(tried)
      if (next !== null) {
        new UpstreamCall(ex, next).start()
        return
      }
    }
    sendLocal(ex, problem(code))
  }

  private settle(): void {
    this.unpause()
    if (this.finished) return
    this.finished = true
    this.endpoint.active--
  }

  private unpause(): void {
    if (!this.pausedByClient) return
    this.pausedByClient = false
    this.endpoint.pausedByClients--
  }

  // ── Downstream events ──
  onClientAbort(): void {
    this.body?.destroy()
    // Still waiting for the first body bytes: nothing upstream will report back, so end here.
    if (!this.dispatched) { this.ex.hooks.done(this.ex, 'client-abort'); return }
    if (this.abortUpstream !== null) this.abortUpstream(new Error('client aborted'))
  }

  onResponseDone(): void {
    // The upstream may have answered before reading the whole request body; stop feeding it.
    if (this.body !== null && !this.body.readableEnded) this.body.destroy()
  }

  onBackpressure(): void { /* undici pauses itself when onData returns false */ }

  onDrain(): void {
    this.unpause()
    if (this.resumeUpstream !== null) this.resumeUpstream()
  }

  /** Called when the gateway has to stop this call (body limit exceeded mid-stream). */
  cancel(): void {
    if (this.abortUpstream !== null) this.abortUpstream(new Error('cancelled by gateway'))
  }
}
