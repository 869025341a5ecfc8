/**
 * A circuit breaker for the shared store: after `threshold` consecutive failures it opens
 * for `openMs` (callers use their fallback at once instead of waiting), then lets one
 * probe through; a successful probe closes it. With the defaults a store that comes back
 * is used again within about a second (the issue asks for 2 s).
 *
 * @module
 */
export class CircuitBreaker {
  private failures = 0
  private openUntil = 0
  private probing = false

  constructor(private readonly threshold = 3, private readonly openMs = 500, private readonly onChange: (open: boolean) => void = () => {}) {}

  /** True while callers should not use the store. */
  get open(): boolean { return this.openUntil !== 0 }

  /** May a call go to the store now? In the half-open state, only one probe at a time. */
  allow(now: number): boolean {
    if (this.openUntil === 0) return true
    if (now < this.openUntil || this.probing) return false
    this.probing = true
    return true
  }

  success(): void {
    const wasOpen = this.openUntil !== 0
    this.failures = 0
    this.openUntil = 0
    this.probing = false
    if (wasOpen) this.onChange(false)
  }

  failure(now: number): void {
    this.probing = false
    this.failures++
    if (this.failures >= this.threshold || this.openUntil !== 0) {
      const wasOpen = this.openUntil !== 0
      this.openUntil = now + this.openMs
      if (!wasOpen) this.onChange(true)
    }
  }
}
