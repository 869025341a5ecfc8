/**
 * A bounded LRU whose entries also expire at a time of their own (a token's `exp`). Shared
 * by jwt-validation (verified tokens) and oauth2-introspection (introspection results).
 *
 * A Map keeps insertion order, so "recently used" is "re-inserted": a hit deletes and
 * re-sets its key and the oldest key is the first one. That is two Map operations per hit,
 * against a WebCrypto verification or an IdP round trip per miss.
 *
 * @module
 */
import { hash } from 'node:crypto'

interface Entry<V> { value: V; expiresAt: number }

export class ExpiringLru<V> {
  private readonly map = new Map<string, Entry<V>>()
  constructor(readonly max: number) {}

  get size(): number { return this.map.size }

  /** The live value for `key`, or undefined (an expired entry is dropped on the way). */
  get(key: string, now: number): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    this.map.delete(key)
    if (e.expiresAt <= now) return undefined
    this.map.set(key, e)
    return e.value
  }

  set(key: string, value: V, expiresAt: number): void {
    if (this.max <= 0) return
    this.map.delete(key)
    this.map.set(key, { value, expiresAt })
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string)
  }

  delete(key: string): void { this.map.delete(key) }
  clear(): void { this.map.clear() }
}

/**
 * Cache key of a credential: its SHA-256. Caches never hold the bearer tokens themselves
 * (a heap dump then leaks no usable credential) and keys stay 44 bytes whatever the token
 * size. One hash of a ~1 KB token is a microsecond or two.
 */
export function tokenKey(token: string): string {
  return hash('sha256', token, 'base64')
}
