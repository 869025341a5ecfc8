/**
 * Flat header lists `[name, value, name, value, ...]` with lowercase names: the shape
 * undici accepts for requests (lib/core/request.js) and the cheapest one to build from
 * uWS's `forEach` and to scan for the dozen or so headers a request carries.
 *
 * @module
 */
import type { HeaderValue } from './downstream.js'

export type HeaderList = HeaderValue[]

export function getHeader(h: HeaderList, name: string): HeaderValue | undefined {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1]
  return undefined
}

export function removeHeader(h: HeaderList, name: string): void {
  let w = 0
  for (let r = 0; r < h.length; r += 2) {
    if (h[r] === name) continue
    if (w !== r) { h[w] = h[r]!; h[w + 1] = h[r + 1]! }
    w += 2
  }
  h.length = w
}

/** Replaces every value of `name` with one, or appends it. */
export function setHeader(h: HeaderList, name: string, value: HeaderValue): void {
  removeHeader(h, name)
  h.push(name, value)
}

/** Request hop-by-hop headers (RFC 9110 §7.6.1) plus proxy-* and the framing we re-serialize. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
])

/** Removes the header names listed in a Connection value (other than the standard tokens). */
export function removeConnectionTokens(h: HeaderList, connection: string): void {
  for (const raw of connection.split(',')) {
    const t = raw.trim().toLowerCase()
    if (t !== '' && t !== 'close' && t !== 'keep-alive') removeHeader(h, t)
  }
}
