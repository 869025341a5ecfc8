/**
 * HTTP/1.1 keep-alive pool for one plain-http endpoint: up to `connections` sockets, idle
 * ones reused last-in first-out (the warmest socket, and the others time out when load
 * drops), requests beyond the limit queued first-in first-out, as undici's Pool does.
 *
 * Why not undici here: undici spends about as much CPU per proxied request as the kernel
 * (bench/RESULTS.md, "Where the time goes"): a Request object and validation per call, a
 * wasm parser with a JS callback per header, stream machinery. This client writes a request
 * as one latin1 string and parses with Node's native llhttp, one call per socket read.
 *
 * @module
 */
import { H1Connection, type ConnectionOwner, type ConnectionSettings } from './connection.js'
import { poolClosed } from './errors.js'
import { lastChunked, requestHead } from './request-head.js'
import type { DispatchHandler, DispatchOptions, UpstreamPool } from './dispatch.js'

export interface H1PoolOptions {
  connections: number
  connectTimeout: number
  headersTimeout: number
  bodyTimeout: number
  keepAliveTimeout: number
  maxHeaderSize: number
}

export class H1Pool implements UpstreamPool, ConnectionOwner {
  readonly settings: ConnectionSettings
  private readonly max: number

  private readonly all = new Set<H1Connection>()
  /** Connected and free, most recently freed last. */
  private readonly idle: H1Connection[] = []
  /** Waiting requests as flat [opts, handler, head, chunked, ...] from `head` on. */
  private queue: unknown[] = []
  private head = 0
  private connecting = 0
  private closing = false
  private whenClosed: (() => void) | null = null
  private closedPromise: Promise<void> | null = null

  readonly stats: { readonly connected: number }

  constructor(origin: string, opts: H1PoolOptions) {
    const u = new URL(origin)
    if (u.protocol !== 'http:') throw new Error(`H1Pool speaks plain http only, got ${origin}`)
    this.settings = {
      // [::1] → ::1 for net.connect; the Host line keeps the brackets.
      host: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === '' ? 80 : Number(u.port),
      hostLine: `host: ${u.host}\r\n`,
      maxHeaderSize: opts.maxHeaderSize,
      connectTimeoutMs: opts.connectTimeout,
      headersTimeoutMs: opts.headersTimeout,
      bodyTimeoutMs: opts.bodyTimeout,
      keepAliveTimeoutMs: opts.keepAliveTimeout,
    }
    this.max = opts.connections
    const all = this.all
    this.stats = {
      get connected(): number {
        let n = 0
        for (const c of all) if (c.connected && !c.closed) n++
        return n
      },
    }
  }

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    if (this.closing) { handler.onError!(poolClosed()); return false }
    // Checked before any connection is taken: a request that cannot be sent is not the endpoint's failure.
    const head = requestHead(opts.method, opts.path, opts.headers, this.settings.hostLine, opts.body !== null)
    if (typeof head !== 'string') { handler.onError!(head); return false }
    const c = this.idle.pop()
    if (c !== undefined) { c.send(opts, handler, head, lastChunked); return true }
    this.queue.push(opts, handler, head, lastChunked)
    if (this.all.size < this.max && this.connecting < this.waiting()) this.open()
    return true
  }

  private waiting(): number { return (this.queue.length - this.head) >> 2 }

  private open(): void {
    this.connecting++
    this.all.add(new H1Connection(this))
  }

  /** Takes the oldest waiting request into `c`, or tells `err` to it; false when none waits. */
  private next(c: H1Connection | null, err: Error | null): boolean {
    if (this.head === this.queue.length) return false
    const q = this.queue
    const h = this.head
    const opts = q[h] as DispatchOptions
    const handler = q[h + 1] as DispatchHandler
    const head = q[h + 2] as string
    const chunked = q[h + 3] as boolean
    q[h] = q[h + 1] = q[h + 2] = undefined
    this.head += 4
    // Compact once the consumed prefix dominates: amortized O(1) per request.
    if (this.head === q.length) { this.queue = []; this.head = 0 } else if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head); this.head = 0
    }
    if (c !== null) c.send(opts, handler, head, chunked)
    else handler.onError!(err!)
    return true
  }

  // ── ConnectionOwner ──
  onReady(c: H1Connection): void {
    if (!c.connected || c.closed) return
    const b = c.bound
    if (c.wasConnecting) {
      c.wasConnecting = false
      if (b !== null) { c.send(b.opts, b.handler, b.head, b.chunked); return }
      this.connecting--
    }
    if (this.next(c, null)) return
    if (this.closing) { c.destroy(); return }
    this.idle.push(c)
  }

  onConnectFailed(c: H1Connection, err: Error): void {
    if (c.bound !== null) { c.wasConnecting = false; c.bound.handler.onError!(err); return }
    if (c.wasConnecting) { c.wasConnecting = false; this.connecting-- }
    // One waiting request learns why; the others get connections of their own (onClosed).
    this.next(null, err)
  }

  retry(opts: DispatchOptions, handler: DispatchHandler, head: string, chunked: boolean): void {
    // Not counted in `connecting`: it serves its bound request, not the queue.
    this.all.add(new H1Connection(this, { opts, handler, head, chunked }))
  }

  onClosed(c: H1Connection): void {
    if (!this.all.delete(c)) return
    if (c.wasConnecting && c.bound === null) { c.wasConnecting = false; this.connecting-- }
    const i = this.idle.indexOf(c)
    if (i !== -1) this.idle.splice(i, 1)
    const waiting = this.waiting()
    if (waiting > this.connecting && this.all.size < this.max) this.open()
    this.checkClosed()
  }

  close(): Promise<void> {
    if (this.closedPromise !== null) return this.closedPromise
    this.closing = true
    this.closedPromise = new Promise((resolve) => { this.whenClosed = resolve })
    for (const c of this.idle.splice(0)) c.destroy()
    this.checkClosed()
    return this.closedPromise
  }

  private checkClosed(): void {
    if (!this.closing || this.all.size > 0 || this.waiting() > 0) return
    const done = this.whenClosed
    this.whenClosed = null
    done?.()
  }
}
