/**
 * Reading a bearer credential from a request and removing it before the request goes
 * upstream: `Authorization: Bearer` (RFC 6750 §2.1, the default), another header, a query
 * parameter (§2.3) or a cookie. Shared by jwt-validation and oauth2-introspection. The
 * source is compiled once per policy; `read` and `strip` are what runs per request.
 *
 * @module
 */
import type { Exchange } from '../exchange.js'
import { getHeader, removeHeader } from '../headers.js'
import type { TokenSourceConfig } from './schema-parts.js'

export interface TokenReader {
  /** The credential, or null when the request carries none (or an empty one). */
  read(ex: Exchange): string | null
  /** Removes the credential from what goes upstream. */
  strip(ex: Exchange): void
  /** For messages: "Authorization header", "query parameter access_token", ... */
  readonly describe: string
}

export function tokenReader(src: TokenSourceConfig | undefined): TokenReader {
  if (src === undefined) return headerReader('authorization', 'Bearer')
  if ('header' in src) {
    const name = src.header.toLowerCase()
    return headerReader(name, src.scheme ?? (name === 'authorization' ? 'Bearer' : ''))
  }
  if ('query' in src) return queryReader(src.query)
  return cookieReader(src.cookie)
}

function headerReader(name: string, scheme: string): TokenReader {
  const prefix = scheme.toLowerCase()
  return {
    describe: `${name} header`,
    read(ex) {
      const v = getHeader(ex.headers, name)
      if (v === undefined) return null
      const s = typeof v === 'string' ? v : v.toString('latin1')
      if (prefix === '') return emptyToNull(s.trim())
      // "Bearer" 1*SP token (RFC 6750 §2.1); the scheme is case-insensitive (RFC 9110 §11.1).
      if (s.length <= prefix.length || s.charCodeAt(prefix.length) !== 32 /* SP */) return null
      if (s.slice(0, prefix.length).toLowerCase() !== prefix) return null
      return emptyToNull(s.slice(prefix.length + 1).trim())
    },
    strip(ex) { removeHeader(ex.headers, name) },
  }
}

function queryReader(param: string): TokenReader {
  const eq = `${param}=`
  return {
    describe: `query parameter ${param}`,
    read(ex) {
      const q = ex.query
      if (q === '' || !q.includes(eq)) return null
      for (const part of q.split('&')) {
        if (!part.startsWith(eq)) continue
        try { return emptyToNull(decodeURIComponent(part.slice(eq.length).replaceAll('+', ' '))) } catch { return null }
      }
      return null
    },
    strip(ex) {
      if (ex.query === '' || !ex.query.includes(eq)) return
      ex.query = ex.query.split('&').filter((p) => !p.startsWith(eq) && p !== param).join('&')
    },
  }
}

function cookieReader(cookie: string): TokenReader {
  const eq = `${cookie}=`
  return {
    describe: `cookie ${cookie}`,
    read(ex) {
      const h = ex.headers
      for (let i = 0; i < h.length; i += 2) {
        if (h[i] !== 'cookie') continue
        for (const raw of String(h[i + 1]).split(';')) {
          const c = raw.trim()
          if (!c.startsWith(eq)) continue
          let v = c.slice(eq.length)
          if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1)
          return emptyToNull(v)
        }
      }
      return null
    },
    strip(ex) {
      const h = ex.headers
      let w = 0
      for (let r = 0; r < h.length; r += 2) {
        let v = h[r + 1]!
        if (h[r] === 'cookie') {
          const kept = String(v).split(';').filter((c) => !c.trim().startsWith(eq)).map((c) => c.trim()).join('; ')
          if (kept === '') continue
          v = kept
        }
        h[w] = h[r]!
        h[w + 1] = v
        w += 2
      }
      h.length = w
    },
  }
}

function emptyToNull(s: string): string | null {
  return s === '' ? null : s
}
