/**
 * A bounded set with least-recently-used eviction, on a Map's insertion order: a hit is
 * re-inserted at the end, and the first key is the oldest. No timers, no per-entry objects.
 *
 * @module
 */
export class LruSet {
  private readonly keys = new Map<string, true>()
  constructor(private readonly max: number) {}

  get size(): number { return this.keys.size }

  /** True when present (and marks it most recently used). */
  has(key: string): boolean {
    if (!this.keys.has(key)) return false
    this.keys.delete(key)
    this.keys.set(key, true)
    return true
  }

  add(key: string): void {
    this.keys.delete(key)
    this.keys.set(key, true)
    if (this.keys.size > this.max) this.keys.delete(this.keys.keys().next().value as string)
  }
}
