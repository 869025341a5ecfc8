/**
 * The dispatch contract the upstream client shares with undici's legacy handler API, so
 * proxy.ts's UpstreamCall and the health checks run unchanged on either client.
 *
 * @module
 */
import type { Readable } from 'node:stream'

/**
 * Idempotent methods (RFC 9110 §9.2.2): the ones a request may be repeated with when it
 * failed before any answer (the client's keep-alive race, proxy.ts's `retries`).
 */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

export interface DispatchOptions {
  path: string
  method: string
  /** Flat `[name, value, ...]`, names lowercase. */
  headers: readonly unknown[]
  body: Readable | null
  /** Per-request overrides of the pool's timeouts (health checks). */
  headersTimeout?: number
  bodyTimeout?: number
}

export interface DispatchHandler {
  /** Called once the attempt holds a connection; `abort` ends it with onError. */
  onConnect?(abort: (err?: Error) => void): void
  /** Returns false to pause reading until `resume`. */
  onHeaders?(statusCode: number, rawHeaders: Buffer[] | string[] | null, resume: () => void, statusText: string): boolean
  /**
   * A piece of the body. Valid during this call only (the client reads into one reused
   * buffer): copy what is kept beyond it. undici's chunks are owned, which this allows.
   */
  onData?(chunk: Buffer): boolean
  onComplete?(trailers: string[] | null): void
  onError?(err: Error): void
}

export interface UpstreamPool {
  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean
  readonly stats: { readonly connected: number }
  /** Graceful: queued and running requests finish, then every connection closes. */
  close(): Promise<void>
}
