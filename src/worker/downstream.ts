/**
 * The client side of one exchange: a state machine around a uWS response. With uws.ts,
 * the only code that calls `res`. Every method is safe to call in any state: after an
 * abort or a finished response it is a no-op (STYLE.md §3.2, §3.14), because late
 * callbacks (upstream data after a client abort, request body after an early answer)
 * are normal, not bugs.
 *
 * Streaming: with a known length the body goes through `tryEnd(chunk, total)`, otherwise
 * through chunked `write`. When uWS reports backpressure, `chunk` returns false and the
 * producer decides (proxy.ts): go on reading, with later chunks queued here (response
 * buffering, bounded per response and per worker by `responseBuffers`), or pause until
 * `onDrain`, which comes from `onWritable` once the saved slice and the queue are out (§3.6).
 * Buffering frees the upstream connection of a slow reader as soon as the upstream has
 * sent everything (nginx's proxy_buffering, in memory only). Chunked responses are never
 * queued here: uWS's `write` keeps what the socket did not take and says nothing of how
 * much that is, so they pause at the first backpressure as before.
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

/**
 * Response buffering for this worker (limits.responseBufferBytes / responseBufferTotalBytes):
 * the limits of the applied snapshot and the bytes queued for slow clients right now.
 */
export const responseBuffers = { perResponse: 1024 * 1024, limit: 64 * 1024 * 1024, total: 0 }

export class Downstream {
  state: DownState = DownState.Open
  /** Total body bytes for tryEnd, or -1 for chunked. */
  private total = -1
  private pending: Buffer | null = null
  private pendingOffset = 0
  /** Chunks that came in behind `pending` while the client was not reading (fixed-length only). */
  private queue: Buffer[] | null = null
  /** Bytes of `pending` and `queue`, counted in responseBuffers.total. */
  queued = 0
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
      this.dropQueued()
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

  /**
   * Sends one body chunk, valid during this call only (what is kept is copied). False when
   * the client is not keeping up: the chunk is kept (sent from onWritable), and the producer
   * either pauses until `onDrain` or, when `mayBuffer()`, goes on and its next chunks are
   * queued.
   */
  chunk(buf: Buffer): boolean {
    if (this.state !== DownState.Streaming) return true
    this.bytesOut += buf.length
    if (this.pending !== null) {
      (this.queue ??= []).push(Buffer.from(buf))
      this.hold(buf.length)
      return false
    }
    const res = this.res
    let ok = true
    let done = false
    res.cork(() => {
      this.writePendingHead()
      if (this.total >= 0) {
        const offset = res.getWriteOffset()
        const r = res.tryEnd(buf, this.total)
        ok = r[0]
        done = r[1]
        // Kept past this call: a copy (the upstream client's chunks live until it returns).
        if (!ok && !done) { this.pending = Buffer.from(buf); this.pendingOffset = offset; this.hold(buf.length) }
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

  /**
   * Whether the producer may go on reading while the client lags: only a fixed-length
   * response, within its own limit and the worker's.
   */
  mayBuffer(): boolean {
    return this.pending !== null && this.queued < responseBuffers.perResponse && responseBuffers.total < responseBuffers.limit
  }

  private hold(n: number): void {
    this.queued += n
    responseBuffers.total += n
  }

  private dropQueued(): void {
    responseBuffers.total -= this.queued
    this.queued = 0
    this.pending = null
    this.queue = null
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
    this.dropQueued()
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
    // The saved slice, then the queue behind it, as far as the socket takes them.
    for (;;) {
      const pending = this.pending!
      const [ok, done] = res.tryEnd(pending.subarray(offset - this.pendingOffset), this.total)
      if (done) {
        this.dropQueued()
        this.state = DownState.Done
        this.listener?.onResponseDone()
        return true
      }
      if (!ok) return false
      this.queued -= pending.length
      responseBuffers.total -= pending.length
      const next = this.queue === null ? undefined : this.queue.shift()
      if (next === undefined) break
      this.pending = next
      this.pendingOffset = offset = res.getWriteOffset()
    }
    this.pending = null
    this.queue = null
    this.stalledSince = 0
    if (this.endAfterDrain) { this.finish(); return true }
    this.listener?.onDrain()
    return true
  }
}
