/**
 * Parsing of the URL-ish strings in config: listener addresses, endpoint URLs, the admin
 * address and trusted-proxy CIDRs. Each returns the parsed value or a message; the caller
 * knows the position.
 *
 * @module
 */
import { isIP } from 'node:net'

export interface ListenAddress {
  scheme: 'http' | 'https'
  /** Without IPv6 brackets: "::", "0.0.0.0", "localhost". */
  host: string
  port: number
  /** "" for root, else "/x/y" without trailing slash. */
  basePath: string
}

export function parseListenAddress(s: string): ListenAddress | { error: string } {
  const u = parseUrl(s)
  if (!u) return { error: `invalid URL ${JSON.stringify(s)}` }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { error: 'must be an http:// or https:// URL' }
  if (u.hostname === '') return { error: 'must name a host to listen on' }
  if (u.username !== '' || u.password !== '') return { error: 'must not contain user info' }
  if (u.search !== '' || u.hash !== '') return { error: 'must not contain a query or fragment' }
  const scheme = u.protocol === 'https:' ? 'https' : 'http'
  return {
    scheme,
    host: unbracket(u.hostname),
    port: u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port),
    basePath: normaliseBasePath(u.pathname),
  }
}

export function normaliseBasePath(p: string): string {
  const trimmed = p.replace(/\/+$/, '')
  return trimmed === '' ? '' : trimmed.startsWith('/') ? trimmed : `/${trimmed}`
}

/** Segment-wise: "/a" overlaps "/a/b" but not "/ab"; root ("") overlaps everything. */
export function basePathsOverlap(a: string, b: string): boolean {
  if (a === b || a === '' || b === '') return true
  const [short, long] = a.length < b.length ? [a, b] : [b, a]
  return long.startsWith(short) && long[short.length] === '/'
}

export interface EndpointUrl {
  origin: string
  pathPrefix: string
}

export function parseEndpointUrl(s: string): EndpointUrl | { error: string } {
  const u = parseUrl(s)
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') {
    return { error: `endpoint must be an http:// or https:// URL with a host, got ${JSON.stringify(s)}` }
  }
  if (u.username !== '' || u.password !== '') return { error: 'endpoint URL must not contain user info' }
  if (u.search !== '' || u.hash !== '') return { error: 'endpoint URL must not contain a query or fragment' }
  // URL.origin drops default ports (http://x:80 → http://x); the pool needs no port either.
  return { origin: u.origin, pathPrefix: u.pathname.replace(/\/+$/, '') }
}

export function parseAdminAddress(s: string): { host: string; port: number } | { error: string } {
  const u = parseUrl(s)
  if (!u || u.protocol !== 'http:' || u.hostname === '') return { error: 'must be an http:// URL with a host and port' }
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') return { error: 'must not contain a path, query or fragment' }
  return { host: unbracket(u.hostname), port: u.port === '' ? 80 : Number(u.port) }
}

/** "10.0.0.0/8" or a bare address → canonical "addr/prefix", or null. */
export function normaliseCidr(s: string): string | null {
  const slash = s.indexOf('/')
  const addr = slash === -1 ? s : s.slice(0, slash)
  const family = isIP(addr)
  if (family === 0) return null
  const max = family === 4 ? 32 : 128
  if (slash === -1) return `${addr}/${max}`
  const bits = s.slice(slash + 1)
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return null
  return `${addr}/${Number(bits)}`
}

export function isWildcardHost(h: string): boolean {
  return h === '0.0.0.0' || h === '::'
}

function parseUrl(s: string): URL | null {
  try {
    return new URL(s)
  } catch {
    return null
  }
}

function unbracket(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
}

/** "host:port" as Configuration.listeners keys a listener (IPv6 in brackets). */
export function listenerName(a: { host: string; port: number }): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
}
