/**
 * One fixed window of one rate-limit policy in one worker: per key, a lease of tokens
 * spent synchronously, refilled from the store (see src/ratelimit/lease.ts).
 *
 * - A token in hand: the request passes synchronously, and when the lease runs low the
 *   next one is fetched in the background, so steady traffic never waits.
 * - No token: the request waits for the grant in flight (all waiters of a key share one
 *   store call and one timer), at most `maxWaitMs`; then it is `Fallback`.
 * - The store said the window is spent: every request is denied synchronously until the
 *   window ends.
 *
 * Lease end times are taken from when the store call was *sent* plus the store's
 * time-to-reset, so a lease always expires a little before the store's window does and
 * a token of one window is never spent in the next.
 *
 * @module
 */
import type { LeaseStore } from '../../../ratelimit/lease.js'

export const enum Verdict { Allow = 0, Deny = 1, Fallback = 2 }

type Waiter = (v: Verdict) => void

class KeyState {
  tokens = 0
  /** Store window index of the tokens held. */
  window = -1
  /** Local time (ms) the lease ends. */
  windowEnd = 0
  /** Tokens left in the store after the last grant (for RateLimit-Remaining). */
  remaining = 0
  exhausted = false
  /** While exhausted, ask the store again after this (tokens released by idle workers). */
  recheckAt = 0
  acquiring = false
  /** Local time of the last token taken (idle leases are given back). */
  lastTake = 0
  lastGrant = 0
  /** Local time the last grant was asked for; with `spent`, this worker's rate on the key. */
  grantAt = 0
  spent = 0
  waiters: Waiter[] | null = null
  timer: NodeJS.Timeout | null = null
}

const SWEEP_EVERY = 4096
const PREFETCH_MIN_GRANT = 4
const LEASE_HORIZON_MS = 25
/** A lease untouched this long gives its tokens back to the store. */
const IDLE_RELEASE_MS = 30
/** A worker refused by the store asks again this often while requests keep coming. */
const RECHECK_MS = 100

export class WindowLimiter {
  private states = new Map<string, KeyState>()
  /** States holding tokens, checked for idleness by one timer per limiter. */
  private holding = new Map<KeyState, string>()
  private releaseTimer: NodeJS.Timeout | null = null
  private ops = 0

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    /** Store key prefix: policy identity and window size. */
    private readonly prefix: string,
    private readonly store: () => LeaseStore,
    private readonly maxWaitMs: number,
  ) {}

  /** Takes one token for `key`: a verdict now, or a promise when the lease must be refilled first. */
  take(key: string, now: number): Verdict | Promise<Verdict> {
    if (++this.ops % SWEEP_EVERY === 0) this.sweep(now)
    let st = this.states.get(key)
    if (st === undefined) { st = new KeyState(); this.states.set(key, st) }
    if (now >= st.windowEnd) { st.tokens = 0; st.exhausted = false }
    if (st.tokens > 0) {
      st.tokens--
      st.spent++
      st.lastTake = now
      // Prefetch only while grants are large: when the window's tokens are scarce (small
      // grants), a prefetched token may sit unused in this worker while another worker is
      // refused, so then tokens are fetched on demand, one store round trip each.
      if (!st.acquiring && st.lastGrant >= PREFETCH_MIN_GRANT && st.tokens * 2 <= st.lastGrant) this.acquire(key, st)
      return Verdict.Allow
    }
    if (st.exhausted) {
      if (now < st.recheckAt) return Verdict.Deny
      st.exhausted = false
    }
    const s = st
    return new Promise<Verdict>((resolve) => {
      (s.waiters ??= []).push(resolve)
      if (!s.acquiring) this.acquire(key, s)
      if (s.timer === null) s.timer = setTimeout(() => this.expireWaiters(s), this.maxWaitMs)
    })
  }

  /** Tokens left in the window as far as this worker knows, and ms until it ends. */
  status(key: string, now: number): { remaining: number; resetMs: number } {
    const st = this.states.get(key)
    if (st === undefined || now >= st.windowEnd) return { remaining: this.limit, resetMs: this.windowMs - (now % this.windowMs) }
    return { remaining: st.remaining + st.tokens, resetMs: st.windowEnd - now }
  }

  private acquire(key: string, st: KeyState): void {
    st.acquiring = true
    const sentAt = Date.now()
    const waiting = st.waiters === null ? 0 : st.waiters.length
    // Ask for about LEASE_HORIZON_MS of this worker's own traffic on the key: a busy worker
    // gets large leases (few store calls), while one that sees the key only now and then
    // asks for exactly the requests waiting, so no token sits in a quiet worker while a
    // busy one is refused. The store caps the grant further as the window runs out.
    const rate = st.spent / Math.max(1, sentAt - st.grantAt)
    const ahead = Math.round(rate * LEASE_HORIZON_MS)
    const want = Math.min(this.limit, ahead < 2 ? Math.max(1, waiting) : ahead + waiting)
    this.store().acquire({ key: this.prefix + key, limit: this.limit, windowMs: this.windowMs, want, need: Math.min(waiting, want) }).then((g) => {
      st.acquiring = false
      if (g.window !== st.window) { st.window = g.window; st.tokens = 0; st.exhausted = false }
      st.tokens += g.granted
      st.windowEnd = sentAt + g.resetMs
      st.remaining = g.remaining
      st.lastGrant = g.granted
      st.grantAt = sentAt
      st.lastTake = sentAt
      st.spent = 0
      if (g.granted === 0) { st.exhausted = true; st.recheckAt = sentAt + RECHECK_MS }
      this.serveWaiters(key, st)
      if (st.tokens > 0) this.hold(key, st)
    }, () => {
      st.acquiring = false
      this.settleAll(st, Verdict.Fallback)
    })
  }

  private hold(key: string, st: KeyState): void {
    this.holding.set(st, key)
    if (this.releaseTimer === null) {
      this.releaseTimer = setInterval(() => this.releaseIdle(), IDLE_RELEASE_MS)
      this.releaseTimer.unref()
    }
  }

  /**
   * Gives the tokens of leases nobody used for IDLE_RELEASE_MS back to the store: a worker
   * whose traffic on a key paused would otherwise strand them until the window ends while
   * other workers are refused (they re-ask every RECHECK_MS).
   */
  private releaseIdle(): void {
    const now = Date.now()
    for (const [st, key] of this.holding) {
      if (st.tokens === 0 || now >= st.windowEnd) { this.holding.delete(st); continue }
      if (now - st.lastTake < IDLE_RELEASE_MS || st.waiters !== null) continue
      this.store().release(this.prefix + key, st.window, st.tokens)
      st.tokens = 0
      st.lastGrant = 0
      this.holding.delete(st)
    }
    if (this.holding.size === 0 && this.releaseTimer !== null) { clearInterval(this.releaseTimer); this.releaseTimer = null }
  }

  private serveWaiters(key: string, st: KeyState): void {
    const w = st.waiters
    if (w === null) return
    let i = 0
    while (i < w.length && st.tokens > 0) { st.tokens--; st.spent++; w[i++]!(Verdict.Allow) }
    if (i === w.length) { this.clearWaiters(st); return }
    w.splice(0, i)
    if (st.exhausted) this.settleAll(st, Verdict.Deny)
    else this.acquire(key, st)
  }

  private expireWaiters(st: KeyState): void {
    st.timer = null
    this.store().reportSlow()
    this.settleAll(st, Verdict.Fallback)
  }

  private settleAll(st: KeyState, v: Verdict): void {
    const w = st.waiters
    this.clearWaiters(st)
    if (w !== null) for (const resolve of w) resolve(v)
  }

  private clearWaiters(st: KeyState): void {
    st.waiters = null
    if (st.timer !== null) { clearTimeout(st.timer); st.timer = null }
  }

  /** Drops keys whose lease ended a window ago and that nobody waits on. */
  private sweep(now: number): void {
    for (const [k, st] of this.states) {
      if (!st.acquiring && st.waiters === null && now >= st.windowEnd + this.windowMs) this.states.delete(k)
    }
  }
}

/**
 * The last resort when no store answers (the shared store is down and the host's
 * embedded store does not answer either, or it is the one failing): a fixed-window count
 * in this worker alone, with the full limit. Approximate (each worker allows up to the
 * limit) but never unlimited, and synchronous.
 */
export class WorkerCounter {
  private counts = new Map<string, { window: number; used: number }>()

  constructor(readonly limit: number, readonly windowMs: number) {}

  take(key: string, now: number): Verdict {
    const window = Math.floor(now / this.windowMs)
    let c = this.counts.get(key)
    if (c === undefined || c.window !== window) {
      if (this.counts.size > 100_000) this.counts.clear() // bounded: an outage must not grow memory forever
      c = { window, used: 0 }
      this.counts.set(key, c)
    }
    if (c.used >= this.limit) return Verdict.Deny
    c.used++
    return Verdict.Allow
  }
}
