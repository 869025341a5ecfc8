/**
 * The ONLY module that imports uWebSockets.js and the only one that touches `res`/`req`.
 * Every uWS rule (STYLE.md §3) is written here once:
 *  - `onAborted` is registered synchronously for every response (§3.1), one per response,
 *    fanned out through `Downstream.onAbort` (§3.2);
 *  - every write after the synchronous top of the handler is corked (§3.3);
 *  - `HttpRequest` is copied out before anything else runs (§3.4);
 *  - body chunks are copied before the callback returns (§3.5);
 *  - backpressure goes through tryEnd/write + onWritable with saved offsets (§3.6);
 *  - after abort or end, every call becomes a no-op through one `state` field (§3.2, §3.14).
 *
 * The build is loaded from its binary directly: the package's own entry silently falls back
 * to a slow pure-JS server when the binary does not load, which must never happen unnoticed.
 *
 * @module
 */
import { createRequire } from 'node:module'
import path from 'node:path'

// uWS's own request limits are compiled into this build (48 header fields, a 4 KiB header
// section when it arrives in several reads; UWS_HTTP_MAX_HEADERS_SIZE is not read by it):
// see docs/uws-parser-findings.md. The gateway's limits (LimitsSnap) sit below them.

const require = createRequire(import.meta.url)

export interface UwsHttpResponse {
  writeStatus(status: string): UwsHttpResponse
  writeHeader(key: string, value: string | Buffer): UwsHttpResponse
  write(chunk: string | Buffer | ArrayBuffer): boolean
  end(body?: string | Buffer | ArrayBuffer, closeConnection?: boolean): UwsHttpResponse
  endWithoutBody(reportedContentLength?: number, closeConnection?: boolean): UwsHttpResponse
  tryEnd(chunk: string | Buffer | ArrayBuffer, totalSize: number): [boolean, boolean]
  close(): UwsHttpResponse
  getWriteOffset(): number
  onWritable(handler: (offset: number) => boolean): UwsHttpResponse
  onAborted(handler: () => void): UwsHttpResponse
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): UwsHttpResponse
  getRemoteAddressAsText(): ArrayBuffer
  cork(cb: () => void): UwsHttpResponse
  pause(): void
  resume(): void
}
export interface UwsHttpRequest {
  getHeader(lowerCaseKey: string): string
  getUrl(): string
  getMethod(): string
  getCaseSensitiveMethod(): string
  getQuery(): string
  forEach(cb: (key: string, value: string) => void): void
}
export type ListenSocket = object
interface UwsApp {
  any(pattern: string, handler: (res: UwsHttpResponse, req: UwsHttpRequest) => void): UwsApp
  listen(host: string, port: number, cb: (token: ListenSocket | false) => void): UwsApp
  close?(): void
}
interface UwsModule {
  App(opts?: object): UwsApp
  SSLApp(opts: object): UwsApp
  us_listen_socket_close(token: ListenSocket): void
  us_socket_local_port(token: ListenSocket): number
}

function loadUws(): UwsModule {
  const pkgDir = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'))
  const file = path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as UwsModule
}
const uws = loadUws()

export interface TlsFiles { certFile: string; keyFile: string; passphrase?: string }

export type RequestHandler = (res: UwsHttpResponse, req: UwsHttpRequest) => void

/**
 * Binds one listener. SO_REUSEPORT is uWS's default on Linux, so every worker binds the
 * same port and the kernel spreads connections (STYLE.md §3.9).
 */
export function listen(host: string, port: number, tls: TlsFiles | null, handler: RequestHandler): Promise<Listener> {
  const app = tls
    ? uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile, passphrase: tls.passphrase })
    : uws.App()
  app.any('/*', handler)
  const l: Listener = { app, host, port, token: null }
  return reopenListener(l).then(() => l)
}

/**
 * A bound (or paused) listener. Pausing closes only the listening socket: the app and its
 * connections stay, and `reopenListener` binds the same app again (the connection cap).
 */
export interface Listener {
  readonly app: UwsApp
  readonly host: string
  readonly port: number
  /** null while closed (paused, or for good). */
  token: ListenSocket | null
}

export function reopenListener(l: Listener): Promise<void> {
  if (l.token !== null) return Promise.resolve()
  return new Promise((resolve, reject) => {
    l.app.listen(l.host, l.port, (token) => {
      if (token) { l.token = token; resolve() } else reject(new Error(`cannot listen on ${l.host}:${l.port}`))
    })
  })
}

export function closeListener(l: Listener): void {
  if (l.token === null) return
  uws.us_listen_socket_close(l.token)
  l.token = null
}

export function listenPort(token: ListenSocket): number {
  return uws.us_socket_local_port(token)
}

const textDecoder = new TextDecoder()
export function remoteAddress(res: UwsHttpResponse): string {
  return textDecoder.decode(res.getRemoteAddressAsText())
}

/**
 * Copies a uWS body chunk, which is neutered when the callback returns (§3.5). Into an
 * unzeroed buffer: `ab.slice(0)` zero-fills its copy first, measured as 3.7 % of a worker's
 * CPU on 1 MiB POSTs (uWS hands bodies over in chunks of up to 512 KiB).
 */
export function copyChunk(ab: ArrayBuffer): Buffer {
  const b = Buffer.allocUnsafe(ab.byteLength)
  b.set(new Uint8Array(ab))
  return b
}
