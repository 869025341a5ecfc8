/**
 * The embedded rate-limit store: the default when no Redis is configured, and the
 * `local` fallback when it is. It lives in the primary so every worker of the host
 * shares exact counters; workers reach it with `gh:lease` IPC requests. The clock is the
 * primary's (one clock for the host).
 *
 * Memory: one small entry per key and window; entries of past windows are swept.
 *
 * @module
 */
import { grantSize, windowOf, type LeaseGrant, type LeaseRequest } from '../ratelimit/lease.js'

interface Counter {
  window: number
  used: number
  /** When the window ends (ms, primary clock): the entry can go after this. */
  endsAt: number
}

const SWEEP_EVERY_MS = 5000

export class EmbeddedLeaseStore {
  private counters = new Map<string, Counter>()
  private lastSweep = 0

  constructor(private readonly clock: () => number = Date.now) {}

  acquire(req: LeaseRequest): LeaseGrant {
    const now = this.clock()
    const { window, resetMs } = windowOf(now, req.windowMs)
    let c = this.counters.get(req.key)
    if (c === undefined || c.window !== window) {
      c = { window, used: 0, endsAt: now + resetMs }
      this.counters.set(req.key, c)
    }
    const granted = grantSize(req.limit - c.used, req.want, req.need)
    c.used += granted
    if (now - this.lastSweep > SWEEP_EVERY_MS) this.sweep(now)
    return { granted, window, resetMs, remaining: Math.max(0, req.limit - c.used) }
  }

  release(key: string, window: number, count: number): void {
    const c = this.counters.get(key)
    if (c !== undefined && c.window === window) c.used = Math.max(0, c.used - count)
  }

  get size(): number { return this.counters.size }

  private sweep(now: number): void {
    this.lastSweep = now
    for (const [k, c] of this.counters) if (c.endsAt <= now) this.counters.delete(k)
  }
}
