/**
 * The client side of one exchange: a state machine around a uWS response. With uws.ts,
 * the only code that calls `res`. Every method is safe to call in any state: after an
 * abort or a finished response it is a no-op (STYLE.md §3.2, §3.14), because late
 * callbacks (upstream data after a client abort, request body after an early answer)
 * are normal, not bugs.
 *
 * Streaming: with a known length the body goes through `tryEnd(chunk, total)`, otherwise
 * through chunked `write`. When uWS reports backpressure the producer is paused through
 * `onBackpressure` and resumed from `onWritable` once the saved slice is out (§3.6).
 *
 * The head of a streamed response waits for its first body bytes, at most until the
 * current parse ends (a microtask): undici parses a small upstream response's head, body
 * and end in one go, so head and body leave in one send(2) instead of two, measured as
 * one syscall of ~6 per proxied request. A head whose body comes later (a slow upstream,
 * SSE) goes out alone at the end of that parse, as before.
 *
 * @module
 */
import type { UwsHttpResponse } from './uws.js'
import { statusLine } from '../errors.js'
import { watchSend } from './client-timeouts.js'

export const enum DownState { Open = 0, Streaming = 1, Done = 2, Aborted = 3 }

export interface DownstreamListener {
  /** The client went away (or the connection was force-closed). */
  onClientAbort(): void
  /** The response is fully handed to uWS. */
  onResponseDone(): void
  /** Pause the producer (upstream) until `onDrain`. */
  onBackpressure(): void
  onDrain(): void
}

export type HeaderValue = string | Buffer

/**
 * Set once when the worker starts draining: every response from then on, including those
 * of requests already in flight, tells the client to close (the worker is about to exit).
 */
export const drainSignal = { draining: false }

export class Downstream {
  state: DownState = DownState.Open
  /** Total body bytes for tryEnd, or -1 for chunked. */
  private total = -1
  private pending: Buffer | null = null
  private pendingOffset = 0
  /** Set by the producer when its last chunk is queued while backpressured. */
  private endAfterDrain = false
  bytesOut = 0
  closeConnection = false
  status = 0
  listener: DownstreamListener | null = null
  /** The listener's send timeout (client-timeouts.ts); set once the listener is known. */
  sendTimeoutMs = 60_000
  /** performance.now() since when writes have made no progress; 0 while writable. */
  stalledSince = 0
  /** The request body reader paused the client (RequestBody): refreshSocketTimer must not resume it. */
  readPaused = false
  /** A streamed response's status line not written yet (see the module comment); null once out. */
  private headStatus: string | null = null
  /** Its headers, while headStatus is set (two fields: no object per response). */
  private headHeaders: HeaderValue[] | null = null

  constructor(readonly res: UwsHttpResponse) {
    // One onAborted per response; everything fans out from here (§3.2).
    res.onAborted(() => {
      const wasLive = this.state !== DownState.Done
      this.state = DownState.Aborted
      this.pending = null
      if (wasLive && this.listener !== null) this.listener.onClientAbort()
    })
  }

  get live(): boolean { return this.state === DownState.Open || this.state === DownState.Streaming }
  get headersSent(): boolean { return this.state !== DownState.Open }

  /** A complete response with a small body, corked. */
  respond(status: number, headers: HeaderValue[] | null, body: string | Buffer, contentType: string | null): void {
    if (this.state !== DownState.Open) return
    const res = this.res
    this.status = status
    this.state = DownState.Done
    res.cork(() => {
      res.writeStatus(statusLine(status))
      if (contentType !== null) res.writeHeader('content-type', contentType)
      if (headers !== null) for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i] as string, headers[i + 1]!)
      // end(body, true) writes "Connection: close" itself and closes after the write.
      res.end(body, this.closeConnection || drainSignal.draining)
    })
    this.bytesOut += body.length
    this.listener?.onResponseDone()
  }

  /**
   * Writes status and headers; the body follows through `chunk`/`finish`.
   * `contentLength` -1 means chunked. `noBody` (HEAD, 204, 304) ends right away, reporting
   * the upstream's length for HEAD.
   */
  start(status: number, statusText: string | null, headers: HeaderValue[], contentLength: number, noBody: boolean): void {
    if (this.state !== DownState.Open) return
    const res = this.res
    this.status = status
    this.total = contentLength
    const line = statusText ? `${status} ${statusText}` : statusLine(status)
    if (!noBody && contentLength !== 0) {
      this.state = DownState.Streaming
      this.headStatus = line
      this.headHeaders = headers
      queueMicrotask(this.flushHead)
      res.onWritable(this.onWritable)
      return
    }
    res.cork(() => {
      this.writeHead(line, headers)
      if (noBody) {
        this.state = DownState.Done
        // HEAD keeps the upstream's length. endWithoutBody(n) would leave uWS waiting for n
        // bytes and kill the next request on the connection; the header + bare call does not.
        if (contentLength >= 0 && status !== 204 && status !== 304) res.writeHeader('content-length', String(contentLength))
        res.endWithoutBody()
      } else {
        this.state = DownState.Done
        res.end()
      }
    })
    this.listener?.onResponseDone()
  }

  /**
   * Re-arms uWS's socket timer (pause + resume, findings §17): it cuts a response that
   * drains slower than ~16 KiB/s after ~10 s, although the client still reads; while the
   * client makes progress within sendTimeoutMs, the decision is ours (client-timeouts.ts).
   */
  refreshSocketTimer(): void {
    if (this.live && !this.readPaused) { this.res.pause(); this.res.resume() }
  }

  /** Status line and headers, inside a cork. */
  private writeHead(status: string, headers: HeaderValue[]): void {
    const res = this.res
    res.writeStatus(status)
    for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i] as string, headers[i + 1]!)
    if (this.closeConnection || drainSignal.draining) res.writeHeader('connection', 'close')
  }

  /** Inside a cork: the pending head, if any, goes out (ahead of whatever follows it). */
  private writePendingHead(): void {
    const status = this.headStatus
    if (status === null) return
    const headers = this.headHeaders!
    this.headStatus = null
    this.headHeaders = null
    this.writeHead(status, headers)
  }

  /** The head alone, when no body bytes came in the parse that brought it. */
  private flushHead = (): void => {
    if (this.headStatus === null) return
    if (this.state !== DownState.Streaming) { this.headStatus = null; this.headHeaders = null; return }
    this.res.cork(() => { this.writePendingHead() })
  }

  /** Sends one body chunk. Returns false when the producer must pause. */
  chunk(buf: Buffer): boolean {
    if (this.state !== DownState.Streaming) return true
    const res = this.res
    this.bytesOut += buf.length
    let ok = true
    let done = false
    res.cork(() => {
      this.writePendingHead()
      if (this.total >= 0) {
        const offset = res.getWriteOffset()
        const r = res.tryEnd(buf, this.total)
        ok = r[0]
        done = r[1]
        if (!ok && !done) { this.pending = buf; this.pendingOffset = offset }
      } else {
        ok = res.write(buf)
      }
    })
    if (done) {
      this.state = DownState.Done
      this.listener?.onResponseDone()
      return true
    }
    if (!ok) {
      if (this.stalledSince === 0) watchSend(this)
      this.listener?.onBackpressure()
    }
    return ok
  }

  /** The producer has no more body. */
  finish(): void {
    if (this.state !== DownState.Streaming) return
    if (this.pending !== null) { this.endAfterDrain = true; return }
    const res = this.res
    if (this.total >= 0) {
      // tryEnd already ended the response when the last byte went out; arriving here with
      // bytes missing means the upstream lied about its length: never a short 2xx.
      this.abort()
      return
    }
    this.state = DownState.Done
    res.cork(() => {
      this.writePendingHead()
      res.end()
    })
    this.listener?.onResponseDone()
  }

  /** Hard close: the client sees a reset or a truncated chunked body, never a clean short response. */
  abort(): void {
    if (!this.live) return
    this.state = DownState.Aborted
    this.pending = null
    this.res.close()
  }

  private onWritable = (offset: number): boolean => {
    if (this.state !== DownState.Streaming) return true
    const res = this.res
    // Progress: the send timeout counts from here again (nginx's send_timeout semantics).
    this.stalledSince = performance.now()
    if (this.pending === null) {
      // Chunked mode: uWS buffered the whole write; just let the producer go on.
      this.stalledSince = 0
      this.listener?.onDrain()
      return true
    }
    const slice = this.pending.subarray(offset - this.pendingOffset)
    const [ok, done] = res.tryEnd(slice, this.total)
    if (done) {
      this.pending = null
      this.state = DownState.Done
      this.listener?.onResponseDone()
      return true
    }
    if (ok) {
      this.pending = null
      this.stalledSince = 0
      if (this.endAfterDrain) { this.finish(); return true }
      this.listener?.onDrain()
    }
    return ok
  }
}
