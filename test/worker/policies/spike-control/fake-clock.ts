import type { SpikeClock } from '../../../../src/worker/policies/spike-control/limiter.js'

/** A fake clock whose timers run only from advance(); counts live timers. */
export class FakeClock implements SpikeClock {
  t = 1000
  private timers = new Map<number, { at: number; fn: () => void }>()
  private seq = 0
  maxLive = 0
  now(): number { return this.t }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { at: this.t + ms, fn })
    this.maxLive = Math.max(this.maxLive, this.timers.size)
    return id
  }
  clearTimer(h: unknown): void { this.timers.delete(h as number) }
  get live(): number { return this.timers.size }
  /** Moves time forward, firing due timers in order (bounded). */
  advance(ms: number): void {
    const end = this.t + ms
    for (let guard = 0; guard < 10_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | null = null
      for (const e of this.timers) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e
      if (next === null) break
      this.timers.delete(next[0])
      this.t = Math.max(this.t, next[1].at)
      next[1].fn()
    }
    this.t = end
  }
}
