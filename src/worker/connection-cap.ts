/**
 * The cap on client connections per worker (`overload.maxConnections`), nginx's
 * worker_connections: at the cap the worker stops accepting (its listening sockets are
 * closed, so the kernel sends new connections to other workers' sockets, and refuses them
 * at once when every worker is at its cap), and it accepts again below 90 % of it.
 *
 * This uWS build reports no connection open or close, so the count comes from the kernel:
 * the worker's open descriptors (/proc/self/fd) minus those it had before serving (listening
 * sockets, log files, IPC, epoll) minus its upstream connections (undici's pool stats). It
 * is read every CHECK_MS, so the cap can be overshot by what arrives in that time. Reading
 * /proc/self/fd costs ~0.6 µs per descriptor (~6 ms at 10,000); the check skips it while
 * the descriptor table (FDSize in /proc/self/status, a power of two above the highest
 * descriptor) is too small to hold the cap, which is the normal case.
 *
 * With net.ipv4.tcp_migrate_req = 0, connections queued on a socket when it closes are
 * reset (system-check.ts warns about it).
 *
 * @module
 */
import fs from 'node:fs'
import type { Logger } from '../telemetry/runtime-log.js'

/** How often the count is read: the cap's precision. */
export const CHECK_MS = 250
/** Accepting starts again below this share of the cap. */
export const RESUME_AT = 0.9

export interface ConnectionCapHost {
  /** Close every listening socket of this worker. */
  pause(): void
  /** Bind them again. */
  resume(): Promise<void>
  /** Upstream connections open now (they are descriptors too, but not client connections). */
  upstreamConnections(): number
}

export interface FdSource {
  /** Open descriptors of this process. */
  count(): number
  /** An upper bound that is cheap to read (FDSize). */
  bound(): number
}

const procFds: FdSource = {
  count: () => fs.readdirSync('/proc/self/fd').length - 1, // the directory's own descriptor
  bound: () => {
    const m = /FDSize:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'latin1'))
    return m === null ? Infinity : Number(m[1])
  },
}

export class ConnectionCap {
  /** True while the worker does not accept. */
  capped = false
  /** Times accepting was stopped (monotonic, for the metrics). */
  episodes = 0
  private max = 0
  private baseline = -1
  private timer: NodeJS.Timeout | null = null
  private since = 0
  private peak = 0

  constructor(private readonly host: ConnectionCapHost, private readonly log: Logger, private readonly fds: FdSource = procFds) {}

  /**
   * Called once the worker's listeners are bound and before it serves (the first time:
   * the descriptors it holds then are the baseline), and on every snapshot. 0 = no cap.
   */
  configure(maxConnections: number): void {
    if (this.baseline < 0) this.baseline = this.fds.count() - this.host.upstreamConnections()
    this.max = maxConnections
    if (maxConnections === 0) {
      if (this.timer !== null) { clearInterval(this.timer); this.timer = null }
      if (this.capped) this.uncap()
      return
    }
    if (this.timer === null) this.timer = setInterval(() => this.check(), CHECK_MS).unref()
  }

  /** Client connections now (an estimate, see the module comment); reads /proc/self/fd. */
  connections(): number {
    return Math.max(0, this.fds.count() - this.baseline - this.host.upstreamConnections())
  }

  /** One check; public for tests. */
  check(): void {
    if (this.max === 0) return
    if (!this.capped && this.fds.bound() - this.baseline < this.max) return
    const n = this.connections()
    if (!this.capped) {
      if (n < this.max) return
      this.capped = true
      this.episodes++
      this.since = performance.now()
      this.peak = n
      this.host.pause()
      this.log.warn('GH_WRN_CONNECTIONS_CAPPED', `not accepting connections: ${n} open, overload.maxConnections is ${this.max}`, { connections: n, max: this.max })
      return
    }
    if (n > this.peak) this.peak = n
    if (n < this.max * RESUME_AT) this.uncap()
  }

  /** The worker is draining: never accept again. */
  close(): void {
    if (this.timer !== null) { clearInterval(this.timer); this.timer = null }
    this.max = 0
    this.capped = false
  }

  private uncap(): void {
    this.capped = false
    const ms = Math.round(performance.now() - this.since)
    this.host.resume().then(
      () => this.log.warn('GH_WRN_CONNECTIONS_UNCAPPED', `accepting connections again after ${ms} ms (peak ${this.peak} open)`, { ms, peak: this.peak }),
      (err: Error) => this.log.error('GH_ERR_LISTENER_REOPEN', `cannot accept again: ${err.message}`),
    )
  }
}
