/**
 * The spike-control engine of one policy instance in one worker: a smoothing rate plus a
 * bounded FIFO of delayed requests, driven by one timer.
 *
 * Rate: GCRA (a token bucket of depth `burst` refilled one token every
 * `interval` = period / maximumRequests ms), kept as one number, the theoretical arrival
 * time `tat`. A request may pass when `now >= tat - (burst - 1) * interval`; passing moves
 * `tat` one interval on. O(1), no per-request state, exact to the millisecond.
 *
 * Delay: a request over the rate waits in the queue (at most `queueLimit` at once, else
 * 429 right away) and is tried again at `enqueuedAt + k * delay` for k = 1..attempts; when
 * its last try finds no token it gets 429. The queue is served strictly in arrival order:
 * only the head is tried, and a new request never overtakes waiting ones, so a tick a
 * request spends behind the head counts as one of its tries (a try that could not win),
 * and it is tried at once when it becomes head. For smooth draining pick `delay` close to
 * the interval; a delay much longer than the interval drains one request per delay.
 *
 * Timers: one timer for the whole queue, armed for the head's next try (STYLE.md §2.12),
 * never one per waiting request. A waiter removed (client gone) frees its slot at once.
 *
 * @module
 */

export interface SpikeOptions {
  /** ms between two admissions at the steady rate (period / maximumRequests). */
  readonly interval: number
  /** Admissions that may happen back to back (token-bucket depth, >= 1). */
  readonly burst: number
  /** ms between the tries of a waiting request. */
  readonly delay: number
  /** Tries of a waiting request before it is rejected (0 = no waiting). */
  readonly attempts: number
  /** Most requests waiting at once (0 = no waiting). */
  readonly queueLimit: number
}

/** Time and timers, injectable so tests can drive a fake clock. */
export interface SpikeClock {
  now(): number
  setTimer(fn: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
}

export const realClock: SpikeClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** A waiting request: subclass it and implement `admit`/`reject` (called once, by the limiter). */
export abstract class SpikeWaiter {
  /** @internal queue links and schedule; owned by the limiter. */
  prev: SpikeWaiter | null = null
  next: SpikeWaiter | null = null
  queued = false
  enqueuedAt = 0
  nextTry = 0
  /** The limiter lets it through: continue the request. */
  abstract admit(): void
  /** No token on its last try: answer 429. */
  abstract reject(): void
}

export class SpikeLimiter {
  private tat = -Infinity
  private readonly tolerance: number
  private head: SpikeWaiter | null = null
  private tail: SpikeWaiter | null = null
  private size = 0
  private timer: unknown = null
  private timerAt = -1

  constructor(readonly opts: SpikeOptions, private readonly clock: SpikeClock = realClock) {
    this.tolerance = (opts.burst - 1) * opts.interval
  }

  get waiting(): number { return this.size }

  /** Admits now if nothing waits and a token is free (the synchronous fast path). */
  tryAdmit(): boolean {
    return this.head === null && this.take(this.clock.now())
  }

  /** Queues `w`; false when the queue is full or waiting is disabled (answer 429). */
  enqueue(w: SpikeWaiter): boolean {
    const o = this.opts
    if (this.size >= o.queueLimit || o.attempts === 0) return false
    const now = this.clock.now()
    w.enqueuedAt = now
    w.nextTry = now + o.delay
    w.queued = true
    w.prev = this.tail
    w.next = null
    if (this.tail === null) this.head = w
    else this.tail.next = w
    this.tail = w
    this.size++
    if (this.head === w) this.schedule()
    return true
  }

  /** Takes `w` out of the queue without an answer (its client left). No-op when not queued. */
  remove(w: SpikeWaiter): void {
    if (!w.queued) return
    const wasHead = this.head === w
    this.unlink(w)
    if (wasHead) this.schedule()
  }

  /** Seconds a client should wait before trying again: until the queue would have drained. */
  retryAfterSeconds(): number {
    const now = this.clock.now()
    const free = Math.max(0, this.tat - this.tolerance - now) + this.size * this.opts.interval
    return Math.max(1, Math.ceil(free / 1000))
  }

  private take(now: number): boolean {
    if (now < this.tat - this.tolerance) return false
    this.tat = Math.max(this.tat, now) + this.opts.interval
    return true
  }

  private unlink(w: SpikeWaiter): void {
    if (w.prev === null) this.head = w.next
    else w.prev.next = w.next
    if (w.next === null) this.tail = w.prev
    else w.next.prev = w.prev
    w.prev = null
    w.next = null
    w.queued = false
    this.size--
  }

  private onTimer = (): void => {
    this.timer = null
    this.timerAt = -1
    this.serve(this.clock.now())
    this.schedule()
  }

  /** Tries the head while its try is due; admitted or rejected heads make room for the next. */
  private serve(now: number): void {
    const o = this.opts
    let w = this.head
    while (w !== null && w.nextTry <= now) {
      // Ticks passed since it was queued; each counts as a try (see the module comment).
      const ticks = Math.floor((now - w.enqueuedAt) / o.delay)
      if (this.take(now)) { this.unlink(w); w.admit() }
      else if (ticks >= o.attempts) { this.unlink(w); w.reject() }
      else { w.nextTry = w.enqueuedAt + (ticks + 1) * o.delay; break }
      w = this.head
    }
  }

  /** Arms the one timer for the head's next try (or clears it when nothing waits). */
  private schedule(): void {
    const h = this.head
    if (h === null) {
      if (this.timer !== null) { this.clock.clearTimer(this.timer); this.timer = null; this.timerAt = -1 }
      return
    }
    if (this.timer !== null) {
      if (this.timerAt === h.nextTry) return
      this.clock.clearTimer(this.timer)
    }
    this.timerAt = h.nextTry
    this.timer = this.clock.setTimer(this.onTimer, Math.max(0, h.nextTry - this.clock.now()))
  }
}
