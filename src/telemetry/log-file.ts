/**
 * A buffered, append-only log file: the destination of the access log and of the runtime
 * log once a `logging.directory` is configured. pino's `destination({ minLength: 4096,
 * sync: false })` (SonicBoom) is the model, with three things it lacks here:
 *
 * - a flush deadline: lines wait at most `flushIntervalMs` (100 ms), so a quiet gateway's
 *   last request still reaches the file (and Fluent Bit) promptly;
 * - a bound: while a write is in flight, lines queue up to `maxBuffer` characters; beyond
 *   that they are dropped and counted (`dropped`), because a slow disk must cost log lines,
 *   never memory or request latency;
 * - `reopen()` for logrotate: open the path again (a new file after a move) and close the
 *   old descriptor once the write in flight on it has finished.
 *
 * Every process (the primary and each worker) opens the same file with O_APPEND and only
 * ever writes whole lines, so lines from different processes never interleave: the kernel
 * positions each write() at the end of the file atomically. Writes are async (libuv thread
 * pool), one at a time, so they stay in order. The only sync write is the last flush at
 * process exit, where nothing else is left to block.
 *
 * Thresholds count string length (UTF-16 units), not bytes: `Buffer.byteLength` per line
 * would cost more than the precision is worth for a batching and safety bound.
 *
 * @module
 * @example
 *   const f = new LogFile('/var/log/gatehouse/access.log')
 *   f.write('{"status":200}\n')
 *   process.on('SIGUSR1', () => f.reopen())
 */
import fs from 'node:fs'
import path from 'node:path'

export interface LogFileOptions {
  /** Start a write once this many characters are buffered. */
  minLength?: number
  /** ...or at the latest this long after the first buffered line. */
  flushIntervalMs?: number
  /** Characters that may wait while a write is in flight; lines beyond are dropped. */
  maxBuffer?: number
  /** File mode when created (the directory gets 0750). */
  mode?: number
  /** A failed open/write (the lines of a failed write are counted as dropped). */
  onError?: (err: NodeJS.ErrnoException) => void
  /** Lines were dropped since the last report; called at most every `dropReportMs`. */
  onDrop?: (count: number) => void
  dropReportMs?: number
}

function noop(): void {}

/** Opens `file` for appending, creating its directory first (mkdir -p). Throws on failure. */
function openAppend(file: string, mode: number): number {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 })
  return fs.openSync(file, 'a', mode)
}

export class LogFile {
  readonly path: string
  /** Lines handed to the kernel. */
  written = 0
  /** Lines lost: buffer full, write error, or written after close. */
  dropped = 0
  private fd: number
  private buf = ''
  private bufLines = 0
  /** The descriptor of the write in flight, -1 when none. */
  private inflightFd = -1
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private idleWaiters: Array<() => void> = []
  private droppedReported = 0
  private dropTimer: NodeJS.Timeout | null = null
  private readonly minLength: number
  private readonly flushIntervalMs: number
  private readonly maxBuffer: number
  private readonly mode: number
  private readonly onError: (err: NodeJS.ErrnoException) => void
  private readonly onDrop: ((count: number) => void) | null
  private readonly dropReportMs: number
  private readonly onTimer = (): void => { this.timer = null; this.flush() }
  private readonly onExit = (): void => { this.flushSync() }

  /** Opens (creates) the file now; throws when it cannot (the caller decides the fallback). */
  constructor(file: string, opts: LogFileOptions = {}) {
    this.path = file
    this.minLength = opts.minLength ?? 4096
    this.flushIntervalMs = opts.flushIntervalMs ?? 100
    this.maxBuffer = opts.maxBuffer ?? 8 * 1024 * 1024
    this.mode = opts.mode ?? 0o640
    this.onError = opts.onError ?? noop
    this.onDrop = opts.onDrop ?? null
    this.dropReportMs = opts.dropReportMs ?? 10_000
    this.fd = openAppend(file, this.mode)
    process.on('exit', this.onExit)
  }

  /** Queues one or more whole lines (each ending in "\n"). False when dropped. */
  write(lines: string): boolean {
    if (this.closed || this.buf.length + lines.length > this.maxBuffer) {
      this.drop(1)
      return false
    }
    this.buf += lines
    this.bufLines++
    if (this.inflightFd !== -1) return true
    if (this.buf.length >= this.minLength) this.flush()
    else if (this.timer === null) this.timer = setTimeout(this.onTimer, this.flushIntervalMs).unref()
    return true
  }

  /** Starts writing what is buffered now (unless a write is already in flight). */
  flush(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    if (this.inflightFd !== -1 || this.buf === '') return
    const data = Buffer.from(this.buf)
    const lines = this.bufLines
    this.buf = ''
    this.bufLines = 0
    this.inflightFd = this.fd
    this.writeChunk(this.fd, data, 0, lines)
  }

  private writeChunk(fd: number, data: Buffer, offset: number, lines: number): void {
    fs.write(fd, data, offset, data.length - offset, null, (err, n) => {
      if (err !== null) {
        this.drop(lines)
        this.onError(err)
      } else if (offset + n < data.length) {
        // A short write (disk nearly full, a signal): finish the batch on the same descriptor.
        this.writeChunk(fd, data, offset + n, lines)
        return
      } else {
        this.written += lines
      }
      this.inflightFd = -1
      if (fd !== this.fd) fs.close(fd, noop) // reopened while this write was in flight
      if (this.buf !== '') {
        if (this.buf.length >= this.minLength || this.closed) this.flush()
        else if (this.timer === null) this.timer = setTimeout(this.onTimer, this.flushIntervalMs).unref()
      }
      if (this.inflightFd === -1 && this.idleWaiters.length > 0) {
        const waiters = this.idleWaiters
        this.idleWaiters = []
        for (const w of waiters) w()
      }
    })
  }

  /** Resolves once everything buffered so far has been handed to the kernel. */
  drained(): Promise<void> {
    this.flush()
    if (this.inflightFd === -1) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Opens the path again: after logrotate moved the file, new lines go to a new file. A
   * write in flight finishes on the old descriptor, which is closed after it. If the
   * open fails, the old file stays in use and the error is reported.
   */
  reopen(): void {
    if (this.closed) return
    let fd: number
    try {
      fd = openAppend(this.path, this.mode)
    } catch (err) {
      this.onError(err as NodeJS.ErrnoException)
      return
    }
    const old = this.fd
    this.fd = fd
    if (this.inflightFd !== old) fs.close(old, noop)
  }

  /** Flushes what is left and closes the file; later writes are dropped. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.dropTimer !== null) { clearTimeout(this.dropTimer); this.reportDrops() }
    await this.drained()
    process.removeListener('exit', this.onExit)
    await new Promise<void>((resolve) => fs.close(this.fd, () => resolve()))
  }

  /** Last resort at process exit: write what is buffered synchronously. */
  flushSync(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    if (this.buf === '') return
    const data = Buffer.from(this.buf)
    const lines = this.bufLines
    this.buf = ''
    this.bufLines = 0
    try {
      let off = 0
      while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off)
      this.written += lines
    } catch {
      this.dropped += lines
    }
  }

  private drop(lines: number): void {
    this.dropped += lines
    if (this.onDrop !== null && this.dropTimer === null) {
      this.dropTimer = setTimeout(() => { this.dropTimer = null; this.reportDrops() }, this.dropReportMs).unref()
    }
  }

  private reportDrops(): void {
    const n = this.dropped - this.droppedReported
    this.droppedReported = this.dropped
    if (n > 0 && this.onDrop !== null) this.onDrop(n)
  }
}
