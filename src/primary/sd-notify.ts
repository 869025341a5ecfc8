/**
 * The systemd notify protocol (`man sd_notify`), spoken directly so the primary can run as
 * a `Type=notify` unit without libsystemd. A message is newline-separated `KEY=VALUE` lines
 * in one datagram to the AF_UNIX socket named by `NOTIFY_SOCKET`.
 *
 * Transports, chosen once in the factory:
 * - `native`: the `unix-dgram` addon (Node's dgram has no AF_UNIX). Used for filesystem
 *   socket paths, which is what systemd hands a service (`/run/systemd/notify`).
 * - `systemd-notify`: the CLI, one process per message, run in order. Used when the addon
 *   did not build, and for abstract (`@name`) sockets, which unix-dgram cannot address (see
 *   `nativePath`). The manager accepts these only if it can attribute them to the service:
 *   as root, systemd-notify sends with our PID (fine under `NotifyAccess=main`); otherwise it
 *   sends with its own PID and the unit needs `NotifyAccess=all`.
 * - `none`: `NOTIFY_SOCKET` unset (not under systemd), or nothing usable; every call is a no-op.
 *
 * Nothing here throws into the caller: a failure is reported once per cause through `log`,
 * because a gateway that serves traffic must not die over a status message.
 *
 * @module
 * @example
 *   const notify = createNotifier(process.env, (level, code, msg) => logger[level]({ code }, msg))
 *   const every = notify.watchdogIntervalMs()
 *   if (every !== null) setInterval(() => notify.watchdog(), every).unref()
 *   notify.ready(`serving ${workers} workers`)
 *   process.on('SIGHUP', () => { notify.reloading(); reload().finally(() => notify.ready()) })
 *   process.on('SIGTERM', () => { notify.stopping('draining'); drain() })
 */
import { spawn } from 'node:child_process'
import { findExecutable } from '../util/find-executable.js'
import { createRequire } from 'node:module'
import { getSystemErrorName } from 'node:util'

/** Log codes this module emits. Operator-facing log lines, not HTTP problems. */
export const NOTIFY_CODES = {
  /** The native addon is missing (or cannot address the socket); using the systemd-notify CLI. */
  FALLBACK: 'GH_WRN_NOTIFY_FALLBACK',
  /** NOTIFY_SOCKET is set but no transport can reach it; the notifier is a no-op. */
  UNAVAILABLE: 'GH_ERR_NOTIFY_UNAVAILABLE',
  /** A message could not be delivered (logged once per distinct cause). */
  SEND: 'GH_ERR_NOTIFY_SEND',
} as const

export type NotifyLogLevel = 'warn' | 'error'
export type NotifyLog = (level: NotifyLogLevel, code: string, message: string) => void
export type NotifyTransport = 'native' | 'systemd-notify' | 'none'

export interface NotifierOptions {
  /** Skip the native addon and use the systemd-notify CLI, as if the addon had not built. */
  forceFallback?: boolean
}

export interface Notifier {
  /** False when every call is a no-op (no NOTIFY_SOCKET, or no way to reach it). */
  readonly enabled: boolean
  readonly transport: NotifyTransport
  /** `READY=1`: start-up finished, or a reload finished. */
  ready(status?: string): void
  /** `RELOADING=1` with `MONOTONIC_USEC`, which systemd ≥ 253 requires to accept it. */
  reloading(status?: string): void
  /** `STOPPING=1`: shutdown began. */
  stopping(status?: string): void
  /** `WATCHDOG=1`: keep-alive ping. */
  watchdog(): void
  /** `STATUS=<text>`: free-form line shown by `systemctl status`. */
  status(text: string): void
  /** How often to call `watchdog()`: half of WATCHDOG_USEC, or null when not asked to. */
  watchdogIntervalMs(): number | null
  /** Later calls become no-ops. Holds no resources: each message uses its own socket. */
  close(): void
}

// unix-dgram's surface as we use it; the package ships no typings.
interface DgramSocket {
  on(event: 'error', listener: (err: Error) => void): unknown
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: ErrnoLike) => void): void
  close(): void
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): DgramSocket
}
interface ErrnoLike extends Error {
  code?: unknown
}

// Constant messages are built once.
const READY = 'READY=1'
const STOPPING = 'STOPPING=1'
const WATCHDOG = 'WATCHDOG=1'

// sockaddr_un.sun_path is 108 bytes; unix-dgram strncpy()s at most 107 of them, so a longer
// path would be silently truncated into a different address.
const MAX_NATIVE_PATH_BYTES = 107

// Spawned CLI calls normally take ~15 ms (measured here, including its BARRIER=1 round
// trip); the bound only stops a wedged one from holding the queue forever.
const CLI_TIMEOUT_MS = 10_000

function noop(): void {}

let addon: UnixDgram | Error | undefined

/** Loaded once per process; a failed load (no native build) is remembered, not retried. */
function loadAddon(): UnixDgram | Error {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)('unix-dgram') as UnixDgram
    } catch (err) {
      addon = err instanceof Error ? err : new Error(String(err))
    }
  }
  return addon
}

/**
 * The path unix-dgram can send to, or null when it cannot address `socket`.
 *
 * Abstract sockets (`@name`) are the reason for null: unix-dgram copies the path with
 * strncpy(), which stops at the leading NUL, and always passes sizeof(sockaddr_un) as the
 * address length. Every "\0name" therefore collapses into one all-NUL abstract address,
 * not the `@name` systemd bound (verified by test).
 */
function nativePath(socket: string): string | null {
  if (!socket.startsWith('/')) return null
  return Buffer.byteLength(socket) <= MAX_NATIVE_PATH_BYTES ? socket : null
}


function errName(err: ErrnoLike): string {
  if (typeof err.code === 'number') {
    try {
      return getSystemErrorName(err.code)
    } catch {}
  }
  return typeof err.code === 'string' ? err.code : err.message
}

/** A newline in a value would start a new KEY=VALUE line, so a status text could forge one. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ')
}

function withStatus(head: string, status: string | undefined): string {
  return status === undefined ? head : `${head}\nSTATUS=${oneLine(status)}`
}

/** Half the watchdog timeout, as sd_watchdog_enabled(3) advises; null when it is not ours. */
function watchdogInterval(env: NodeJS.ProcessEnv): number | null {
  const usec = Number(env.WATCHDOG_USEC)
  if (!Number.isSafeInteger(usec) || usec <= 0) return null
  const pid = env.WATCHDOG_PID
  // WATCHDOG_PID names the process systemd watches; a child that inherited the variables
  // must not ping on the parent's behalf.
  if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return null
  return Math.max(1, Math.floor(usec / 2000))
}

type Report = (err: ErrnoLike) => void

/**
 * One socket per message, as libsystemd's sd_notify() does. A long-lived unix-dgram socket
 * would keep its uv_poll handle, never unref'd, alive and hold the event loop open after
 * drain; messages are rare (a watchdog ping every few seconds), so the extra syscalls are
 * noise.
 */
function nativeSender(lib: UnixDgram, path: string, report: Report): (payload: string) => void {
  return function sendDatagram(payload) {
    let sock: DgramSocket | undefined
    try {
      sock = lib.createSocket('unix_dgram')
      // unix-dgram emits 'error' only when send has no callback; a listener still guards
      // against an unhandled 'error' event turning into a throw.
      sock.on('error', report)
      const buf = Buffer.from(payload)
      // The callback runs synchronously (sendmsg on a non-blocking socket).
      sock.send(buf, 0, buf.length, path, (err) => {
        if (err) report(err)
      })
    } catch (err) {
      report(err as ErrnoLike)
    } finally {
      try {
        sock?.close()
      } catch {}
    }
  }
}

/**
 * Each message becomes one `systemd-notify KEY=VALUE…` run. Runs are chained so that
 * RELOADING=1 cannot overtake the READY=1 that follows it; spawn is async so the event loop
 * never waits on it.
 */
function cliSender(bin: string, env: NodeJS.ProcessEnv, report: Report): (payload: string) => void {
  let tail: Promise<void> = Promise.resolve()
  function run(payload: string): Promise<void> {
    return new Promise((resolve) => {
      let stderr = ''
      const child = spawn(bin, payload.split('\n'), {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: CLI_TIMEOUT_MS,
      })
      child.stderr.setEncoding('utf8')
      child.stderr.on('data', (chunk: string) => {
        if (stderr.length < 1024) stderr += chunk
      })
      child.on('error', (err) => {
        report(err)
        resolve()
      })
      child.on('close', (code, signal) => {
        if (code !== 0) {
          const why = stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`)
          report(Object.assign(new Error(why), { code: `systemd-notify: ${why}` }))
        }
        resolve()
      })
    })
  }
  return function sendViaCli(payload) {
    tail = tail.then(() => run(payload))
  }
}

function disabledNotifier(): Notifier {
  return {
    enabled: false,
    transport: 'none',
    ready: noop,
    reloading: noop,
    stopping: noop,
    watchdog: noop,
    status: noop,
    watchdogIntervalMs: () => null,
    close: noop,
  }
}

/**
 * Builds the notifier for this process. Reads `env` once; a later change to it has no
 * effect. With `NOTIFY_SOCKET` unset the result is a no-op with `enabled: false`.
 *
 * @example
 *   const n = createNotifier()                        // process.env
 *   n.ready('serving 4 workers')                      // "READY=1\nSTATUS=serving 4 workers"
 *   createNotifier(env, log, { forceFallback: true }) // exercise the systemd-notify path
 */
export function createNotifier(
  env: NodeJS.ProcessEnv = process.env,
  log: NotifyLog = noop,
  options: NotifierOptions = {},
): Notifier {
  const socket = env.NOTIFY_SOCKET
  if (socket === undefined || socket === '') return disabledNotifier()

  const reported = new Set<string>()
  function logOnce(level: NotifyLogLevel, code: string, key: string, message: string): void {
    if (reported.has(key)) return
    reported.add(key)
    try {
      log(level, code, message)
    } catch {}
  }
  const report: Report = (err) => {
    const cause = errName(err)
    logOnce('error', NOTIFY_CODES.SEND, `send:${cause}`, `sd_notify to ${socket} failed: ${cause}`)
  }

  let transport: NotifyTransport = 'none'
  let send: (payload: string) => void = noop

  const path = nativePath(socket)
  const lib = options.forceFallback ? new Error('native transport disabled by forceFallback') : loadAddon()
  if (path !== null && !(lib instanceof Error)) {
    transport = 'native'
    send = nativeSender(lib, path, report)
  } else {
    const why =
      lib instanceof Error
        ? `unix-dgram native addon is missing (${lib.message.split('\n')[0]})`
        : `unix-dgram cannot address NOTIFY_SOCKET=${socket}`
    // systemd-notify (v252 here) speaks AF_UNIX paths and @abstract names only; vsock: is newer.
    const unixAddress = socket.startsWith('/') || socket.startsWith('@')
    const bin = unixAddress ? findExecutable('systemd-notify', env.PATH ?? process.env.PATH) : null
    if (bin !== null) {
      transport = 'systemd-notify'
      send = cliSender(bin, env, report)
      logOnce('warn', NOTIFY_CODES.FALLBACK, 'fallback', `${why}; sending notifications through ${bin}`)
    } else {
      const also = unixAddress ? 'and systemd-notify is not in PATH' : 'and the address type is unsupported'
      logOnce('error', NOTIFY_CODES.UNAVAILABLE, 'unavailable', `${why} ${also}; systemd notifications are off`)
      return disabledNotifier()
    }
  }

  const interval = watchdogInterval(env)
  let open = true
  function emit(payload: string): void {
    if (open) send(payload)
  }

  return {
    enabled: true,
    transport,
    ready: (status) => emit(withStatus(READY, status)),
    reloading: (status) => {
      // CLOCK_MONOTONIC in µs: process.hrtime is uv_hrtime, which reads CLOCK_MONOTONIC on Linux.
      emit(withStatus(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, status))
    },
    stopping: (status) => emit(withStatus(STOPPING, status)),
    watchdog: () => emit(WATCHDOG),
    status: (text) => emit(`STATUS=${oneLine(text)}`),
    watchdogIntervalMs: () => interval,
    close: () => {
      open = false
    },
  }
}
