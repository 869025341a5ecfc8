/**
 * One keep-alive connection to an upstream endpoint, running one request at a time
 * (no pipelining: a response is never attributed to the wrong request).
 *
 * Per request on the hot path: one `write` of the head (with no body, the whole request),
 * one `execute` of Node's llhttp per socket read, and the handler's callbacks. No timers
 * are armed per request: the pool's sweep compares `deadline` (see timers.ts). No buffer is
 * allocated per read either: every socket reads into `READ_BUFFER`, and a Content-Length
 * body is handed over as views of it (llhttp parses the head only), valid during onData.
 *
 * Order of events the code relies on:
 *  - `release` back to the pool waits until `execute` returned: bytes after a complete
 *    response in the same read are a protocol violation, not the next request's answer;
 *  - every parser callback checks `handler`, which is null once the request ended (an abort
 *    inside a callback, e.g. the slow-reader cut, ends it while `execute` still runs).
 *
 * @module
 */
import net from 'node:net'
import { HEAD_ONLY, HTTPParser, SKIP_BODY, type NodeHttpParser } from './http-parser.js'
import { IDEMPOTENT, type DispatchHandler, type DispatchOptions } from './dispatch.js'
import {
  bodyTimeout, connectTimeout, headersTimeout, otherSideClosed, parseFailure, requestAborted, unexpectedUpgrade,
} from './errors.js'
import { armSweep } from './timers.js'
import { BodyWriter, type BodyWriterEvents } from './body-writer.js'

/** One endpoint's connection settings, shared by all its connections. */
export interface ConnectionSettings {
  readonly host: string
  readonly port: number
  /** `host: <origin host>\r\n`, for requests without a Host header. */
  readonly hostLine: string
  readonly maxHeaderSize: number
  readonly connectTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  readonly keepAliveTimeoutMs: number
}

/** What the pool tells a connection when it may take the next request or must go. */
export interface ConnectionOwner {
  readonly settings: ConnectionSettings
  /** The connection is up, or its request ended and it can serve another. */
  onReady(c: H1Connection): void
  /** The connection could not be opened: its bound request, or one waiting request, gets `err`. */
  onConnectFailed(c: H1Connection, err: Error): void
  /** Send again on a new connection: see H1Connection.retryable. */
  retry(opts: DispatchOptions, handler: DispatchHandler, head: string, chunked: boolean): void
  /** The connection closed for good. */
  onClosed(c: H1Connection): void
}

export const enum Wait { None = 0, Connect = 1, Head = 2, Body = 3, Idle = 4 }

/** A request bound to a new connection (a retry): sent once it is up, failed if it cannot be. */
export interface Bound { opts: DispatchOptions, handler: DispatchHandler, head: string, chunked: boolean }

const EMPTY: string[] = []

/**
 * Every upstream socket of this worker reads into this one buffer (Node's `onread`), and
 * each read is consumed before the next: no allocation per read. A buffer per read is
 * external memory that V8 answers with full mark-compacts, measured as a fifth of a
 * worker's CPU on 64 KiB responses.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

/**
 * The Content-Length of a head whose body this connection may hand over itself, else -1.
 * llhttp has already refused invalid and conflicting lengths; with Transfer-Encoding present
 * llhttp keeps the body (it decides which framing wins).
 */
function ownableLength(fields: readonly string[]): number {
  let cl = -1
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!
    if (name.length === 14 && name.toLowerCase() === 'content-length') cl = Number(fields[i + 1])
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return -1
  }
  return cl
}

export class H1Connection implements BodyWriterEvents {
  readonly socket: net.Socket
  private readonly parser: NodeHttpParser
  connected = false
  /** Destroyed, or closing: takes no request any more. */
  closed = false
  /** Counted in the pool's `connecting` until its connect is reported. */
  wasConnecting = true
  /** onConnectFailed or onReady was reported for the connect: exactly one of them, once. */
  private connectReported = false

  /** What the sweep checks: the timeout that applies now and when it expires. */
  wait: Wait = Wait.Connect
  deadline: number

  // ── the request in flight ──
  private handler: DispatchHandler | null = null
  private opts: DispatchOptions | null = null
  private head = ''
  /** Requests this connection took before the one in flight. */
  private served = 0
  /** Response bytes arrived for the request in flight. */
  private answered = false
  private gen = 0
  private skipBody = false
  private info = false
  private keepAlive = true
  private bodyDone = true
  private writer: BodyWriter | null = null
  private chunked = false
  private paused = false
  /** Bytes of the request went out: ending it early makes the connection unusable. */
  private written = false
  private headersTimeoutMs = 0
  private bodyTimeoutMs = 0
  /** The response ended inside `execute`: release once it returns. */
  private completed = false
  /** Bytes that belong to no request arrived: the connection cannot be trusted. */
  private garbage = false
  /**
   * Bytes left of a Content-Length body this connection hands over itself, as views of the
   * socket's reads (-1: llhttp delivers the body, copied: chunked or close-delimited).
   */
  private bodyLeft = -1
  /** Head fields flushed early by llhttp (more than 32 fields). */
  private headerAcc: string[] | null = null

  private readonly settings: ConnectionSettings

  constructor(private readonly owner: ConnectionOwner, readonly bound: Bound | null = null) {
    const settings = this.settings = owner.settings
    const p = this.parser = new HTTPParser()
    p.initialize(HTTPParser.RESPONSE, this, settings.maxHeaderSize, HTTPParser.kLenientNone)
    p[HTTPParser.kOnHeaders] = this.onParserHeaders
    p[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete
    p[HTTPParser.kOnBody] = this.onBody
    p[HTTPParser.kOnMessageComplete] = this.onMessageComplete
    this.deadline = performance.now() + settings.connectTimeoutMs
    armSweep(this)
    const s = this.socket = net.connect({
      host: settings.host, port: settings.port, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: this.onRead },
    })
    s.on('connect', this.onConnect)
    s.on('end', this.onSocketEnd)
    s.on('error', this.onSocketError)
    s.on('close', this.onSocketClose)
  }

  /** Sends a request (its head made by `requestHead`); the connection must be connected and idle. */
  send(opts: DispatchOptions, handler: DispatchHandler, head: string, chunked: boolean): void {
    // The pool never offers a closed connection; if it ever did, the request must not hang.
    if (this.closed) { handler.onError!(otherSideClosed()); return }
    const gen = ++this.gen
    if (this.written) this.served++
    this.handler = handler
    this.opts = opts
    this.head = head
    this.answered = false
    this.written = false
    this.skipBody = opts.method === 'HEAD'
    this.keepAlive = true
    this.info = false
    this.headersTimeoutMs = opts.headersTimeout ?? this.settings.headersTimeoutMs
    this.bodyTimeoutMs = opts.bodyTimeout ?? this.settings.bodyTimeoutMs
    this.wait = Wait.None
    handler.onConnect?.((err) => { if (this.gen === gen) this.abort(err) })
    // Aborted from onConnect (the client left meanwhile): nothing was written, keep the connection.
    if (this.handler !== handler) return
    const body = opts.body
    if (body !== null && body.destroyed) { this.endRequest(requestAborted(), false); return }
    this.written = true
    this.wait = Wait.Head
    this.deadline = performance.now() + this.headersTimeoutMs
    if (body === null) {
      this.bodyDone = true
      this.socket.write(head, 'latin1')
      return
    }
    this.bodyDone = false
    this.chunked = chunked
    this.socket.write(head, 'latin1')
    this.writer = new BodyWriter(body, this.socket, chunked, this)
  }

  // ── request body (BodyWriterEvents) ──
  progress(): void {
    // The upstream is still receiving: its answer is not late yet (undici refreshes the same way).
    if (this.wait === Wait.Head) this.deadline = performance.now() + this.headersTimeoutMs
  }

  done(): void {
    this.bodyDone = true
    this.writer = null
  }

  cut(): void {
    this.writer = null
    if (this.handler !== null) this.abort(requestAborted())
    else this.destroy() // the response already came: only the half-sent body is left to stop
  }

  private detachBody(): void {
    const w = this.writer
    if (w === null) return
    this.writer = null
    w.detach()
  }

  // ── response ──
  /** Node's onread: `READ_BUFFER` holds `n` new bytes until this returns. */
  private onRead = (n: number): boolean => {
    this.onSocketData(n === READ_BUFFER.length ? READ_BUFFER : READ_BUFFER.subarray(0, n))
    return !this.paused
  }

  private onSocketData(buf: Buffer): void {
    if (this.handler === null) { this.garbage = true; this.destroy(); return }
    this.answered = true
    if (this.wait === Wait.Body) this.deadline = performance.now() + this.bodyTimeoutMs
    if (this.bodyLeft > 0) this.ownBody(buf)
    else this.parse(buf)
  }

  private parse(buf: Buffer): void {
    const r = this.parser.execute(buf)
    if (typeof r !== 'number') { if (this.handler !== null) this.endRequest(parseFailure(r), true); else this.destroy(); return }
    if (this.bodyLeft > 0) {
      // llhttp stopped after a head whose body is ours (HEAD_ONLY). It is left in its
      // upgrade state, which misparses the next response: start it afresh (0.2 µs).
      this.parser.initialize(HTTPParser.RESPONSE, this, this.settings.maxHeaderSize, HTTPParser.kLenientNone)
      if (r < buf.length) { this.ownBody(buf.subarray(r)); return }
    }
    this.afterExecute()
  }

  /**
   * Content-Length body bytes, handed over as views of `READ_BUFFER`: valid during onData
   * only (DispatchHandler). llhttp's own body callback copies every piece into a new buffer,
   * external memory that V8 pays for in full mark-compacts.
   */
  private ownBody(buf: Buffer): void {
    const h = this.handler!
    const left = this.bodyLeft
    if (buf.length <= left) {
      this.bodyLeft = left - buf.length
      const more = h.onData!(buf)
      if (this.handler !== h) return // aborted from onData (client gone, slow reader cut)
      if (this.bodyLeft === 0) { this.responseEnded(h); this.afterExecute(); return }
      if (more === false) this.pause()
      return
    }
    // The body's end and more in one read: those bytes answer no request.
    this.bodyLeft = 0
    h.onData!(buf.subarray(0, left))
    if (this.handler !== h) return
    this.garbage = true
    this.responseEnded(h)
    this.afterExecute()
  }

  private afterExecute(): void {
    if (!this.completed) return
    this.completed = false
    if (this.garbage || !this.keepAlive || !this.bodyDone || this.closed) { this.destroy(); return }
    this.wait = Wait.Idle
    this.deadline = performance.now() + this.settings.keepAliveTimeoutMs
    this.owner.onReady(this)
  }

  private onParserHeaders = (fields: string[]): void => {
    if (this.headerAcc === null) this.headerAcc = fields
    else for (let i = 0; i < fields.length; i++) this.headerAcc.push(fields[i]!)
  }

  private onHeadersComplete = (_maj: number, _min: number, fields: string[] | undefined, _m: unknown, _u: unknown,
    status: number, statusText: string, upgrade: boolean, keepAlive: boolean): number => {
    const h = this.handler
    if (fields === undefined) { fields = this.headerAcc ?? EMPTY; this.headerAcc = null } else if (this.headerAcc !== null) {
      this.headerAcc.push(...fields); fields = this.headerAcc; this.headerAcc = null
    }
    if (h === null) { this.garbage = true; return SKIP_BODY }
    if (upgrade) { this.endRequest(unexpectedUpgrade(), true); return SKIP_BODY }
    // 1xx: an interim response (its end is not the request's); 100-continue was uWS's business.
    if (status < 200) { this.info = true; return SKIP_BODY }
    this.keepAlive = keepAlive
    this.wait = Wait.Body
    this.deadline = performance.now() + this.bodyTimeoutMs
    const gen = this.gen
    const paused = h.onHeaders!(status, fields, () => { if (this.gen === gen) this.resume() }, statusText) === false
    if (this.handler !== h) return SKIP_BODY
    if (paused) this.pause()
    if (this.skipBody) return SKIP_BODY
    if (status === 204 || status === 304) return 0 // llhttp knows these have no body, whatever Content-Length says
    const cl = ownableLength(fields)
    if (cl > 0) { this.bodyLeft = cl; return HEAD_ONLY }
    return 0
  }

  private onBody = (chunk: Buffer): void => {
    const h = this.handler
    if (h === null) { this.garbage = true; return }
    if (h.onData!(chunk) === false && this.handler === h) this.pause()
  }

  private onMessageComplete = (): void => {
    const h = this.handler
    if (h === null) { this.garbage = true; return }
    if (this.info) { this.info = false; return }
    if (this.bodyLeft > 0) return // HEAD_ONLY: llhttp is done with the head, the body is ours
    this.responseEnded(h)
  }

  private responseEnded(h: DispatchHandler): void {
    this.bodyLeft = -1
    this.handler = null
    this.completed = true
    this.wait = Wait.None
    // The body is still being sent (an early answer): stop; the connection cannot be reused.
    if (!this.bodyDone) this.detachBody()
    if (this.paused) { this.paused = false; this.socket.resume() }
    h.onComplete!(EMPTY)
  }

  private pause(): void {
    if (this.paused) return
    this.paused = true
    this.wait = Wait.None // no body timeout while the client holds us back (as undici)
    this.socket.pause()
  }

  private resume(): void {
    if (!this.paused || this.handler === null) return
    this.paused = false
    this.wait = Wait.Body
    this.deadline = performance.now() + this.bodyTimeoutMs
    this.socket.resume()
  }

  // ── ends ──
  private abort(err: Error | undefined): void {
    if (this.handler === null) return
    // Nothing written yet (aborted from onConnect): the connection is still clean.
    this.endRequest(err ?? requestAborted(), this.written)
  }

  /** Ends the request in flight with an error; `dirty`: the connection is unusable after it. */
  private endRequest(err: Error, dirty: boolean): void {
    const h = this.handler
    if (h === null) return
    this.handler = null
    this.bodyLeft = -1
    this.detachBody()
    if (dirty && this.retryable(err)) {
      this.destroy()
      this.owner.retry(this.opts!, h, this.head, this.chunked)
      return
    }
    if (dirty) this.destroy()
    else { this.wait = Wait.Idle; this.deadline = performance.now() + this.settings.keepAliveTimeoutMs }
    h.onError!(err)
    if (!dirty) this.owner.onReady(this)
  }

  /**
   * The keep-alive race: the upstream closed a reused connection just as this request went
   * out, and answered nothing. An idempotent request without a body is sent again, once, on
   * a new connection (RFC 9112 §9.3.1; nginx and Envoy do the same). A new connection is
   * never reused in this sense, so the retry cannot repeat.
   */
  private retryable(err: Error & { code?: string }): boolean {
    if (this.served === 0 || this.answered || this.opts === null || this.opts.body !== null) return false
    const c = err.code
    return (c === 'UND_ERR_SOCKET' || c === 'ECONNRESET' || c === 'EPIPE') && IDEMPOTENT.has(this.opts.method)
  }

  /** The sweep found `deadline` passed. */
  timedOut(): void {
    switch (this.wait) {
      case Wait.Connect: this.fail(connectTimeout(this.settings.connectTimeoutMs)); return
      case Wait.Head: this.endRequest(headersTimeout(this.headersTimeoutMs), true); return
      case Wait.Body: this.endRequest(bodyTimeout(this.bodyTimeoutMs), true); return
      case Wait.Idle: this.destroy(); return
      default:
    }
  }

  /** Closes the socket; the pool forgets the connection now, not at 'close' (a tick later). */
  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.wait = Wait.None
    this.detachBody()
    this.socket.destroy()
    this.owner.onClosed(this)
  }

  private onConnect = (): void => {
    this.connected = true
    this.connectReported = true
    // Idle until the pool hands it a request (send() replaces this wait). A connection
    // opened for a request that another connection took meanwhile goes to the idle list
    // unused, and must time out like any idle one: the upstream never closes a connection
    // that never carried a request (Node's keepAliveTimeout starts after a response), so
    // without this deadline it stayed open for good (found by bench/soak.mjs).
    this.wait = Wait.Idle
    this.deadline = performance.now() + this.settings.keepAliveTimeoutMs
    this.owner.onReady(this)
  }

  /** Ends whatever is pending (the request, or the wait for a connection) with `err`. */
  private fail(err: Error): void {
    if (this.handler !== null) { this.endRequest(err, true); return }
    // Reported before the pool forgets it: the pool then opens what the other waiters need.
    if (!this.connectReported) { this.connectReported = true; this.owner.onConnectFailed(this, err) }
    this.destroy()
  }

  private onSocketEnd = (): void => {
    // A response framed by the connection's end completes here; anything else was cut.
    // Cut mid-head or mid-body: the connection's fault, whatever state llhttp was in (undici's code too).
    this.parser.finish()
    if (this.handler !== null) this.endRequest(otherSideClosed(), true)
    this.destroy()
  }

  private onSocketError = (err: Error): void => { this.fail(err) }

  private onSocketClose = (): void => {
    if (this.handler !== null) this.endRequest(otherSideClosed(), true)
    else if (!this.connectReported) { this.connectReported = true; this.owner.onConnectFailed(this, otherSideClosed()) }
    this.destroy()
    // The native parser holds its JS object, and through the callbacks this connection,
    // until it is closed: without this every closed connection stayed in memory (found by
    // bench/soak.mjs). Here, not in destroy(): destroy() runs inside parser callbacks, and
    // nothing parses after 'close'.
    this.parser.close()
  }
}
