/**
 * What both token policies (jwt-validation, oauth2-introspection) do once a credential is
 * judged: check required claims, pick the consumer, prepare claim headers, apply it all to
 * the Exchange, and the RFC 6750 challenges for the failures. Everything that depends
 * only on the config is built here once; what depends on the token is built once per
 * token (and cached with it), so a cached token costs a few array writes.
 *
 * @module
 */
import type { Exchange } from '../exchange.js'
import { removeHeader } from '../headers.js'
import { problem } from '../local-response.js'
import type { LocalResponse } from '../policies/types.js'
import type { TokenReader } from './token.js'

/** A judged credential, as cached. */
export interface Verdict {
  /** Frozen claims (a JWT payload or an introspection answer). */
  readonly claims: Readonly<Record<string, unknown>>
  readonly consumer: string | null
  /** [header, value, ...] to set on the upstream request. */
  readonly forward: readonly string[]
  /** A 403 when a required claim is missing; null when the request may pass. */
  readonly denial: LocalResponse | null
}

export interface RequiredClaim {
  readonly name: string
  readonly value: string | number | boolean | undefined
  readonly denial: LocalResponse
}

/** Builds the challenges and problem responses of one policy instance, once. */
export class Challenges {
  readonly missing: LocalResponse
  readonly unavailable: LocalResponse
  private readonly realm: string
  private readonly invalidByReason = new Map<string, LocalResponse>()

  constructor(realm: string) {
    this.realm = `Bearer realm="${realm}"`
    this.missing = problem('GH_ERR_AUTH_MISSING', 'a bearer token is required', ['www-authenticate', this.realm])
    this.unavailable = problem('GH_ERR_AUTH_UNAVAILABLE', 'the authorization server cannot be reached', ['retry-after', '5'])
  }

  /** 401 invalid_token; `reason` comes from a fixed set, so the responses are built once each. */
  invalid(reason: string): LocalResponse {
    let r = this.invalidByReason.get(reason)
    if (r === undefined) {
      r = problem('GH_ERR_AUTH_INVALID', reason,
        ['www-authenticate', `${this.realm}, error="invalid_token", error_description="${reason}"`])
      this.invalidByReason.set(reason, r)
    }
    return r
  }

  /** 403 insufficient_scope (RFC 6750 §3.1), with `scope` when scopes are what is missing. */
  forbidden(description: string, scope: string | null): LocalResponse {
    const scopeParam = scope === null ? '' : `, scope="${scope}"`
    return problem('GH_ERR_AUTH_FORBIDDEN', description,
      ['www-authenticate', `${this.realm}, error="insufficient_scope", error_description="${description}"${scopeParam}`])
  }
}

const SCOPE_CLAIMS = new Set(['scope', 'scp'])

export function compileRequiredClaims(list: ReadonlyArray<string | { name: string; value?: string | number | boolean }> | undefined,
  ch: Challenges): RequiredClaim[] {
  if (list === undefined) return []
  return list.map((c) => {
    const name = typeof c === 'string' ? c : c.name
    const value = typeof c === 'string' ? undefined : c.value
    const scope = SCOPE_CLAIMS.has(name) && typeof value === 'string' ? quotedSafe(value) : null
    const what = value === undefined ? `missing required claim ${name}` : `claim ${name} does not include ${quotedSafe(String(value))}`
    return { name, value, denial: ch.forbidden(quotedSafe(what), scope) }
  })
}

/** The first required claim the token does not satisfy, or null. */
export function firstUnmet(claims: Readonly<Record<string, unknown>>, required: readonly RequiredClaim[]): RequiredClaim | null {
  for (let i = 0; i < required.length; i++) {
    const r = required[i]!
    if (!hasClaim(claims, r.name, r.value)) return r
  }
  return null
}

function hasClaim(claims: Readonly<Record<string, unknown>>, name: string, value: unknown): boolean {
  const c = Object.hasOwn(claims, name) ? claims[name] : undefined
  if (c === undefined || c === null) return false
  if (value === undefined || c === value) return true
  if (Array.isArray(c)) return c.includes(value)
  // OAuth scopes travel as one space-separated string (RFC 8693 §4.2, RFC 7662 §2.2).
  if (SCOPE_CLAIMS.has(name) && typeof c === 'string' && typeof value === 'string') return c.split(' ').includes(value)
  return false
}

/** claim → header pairs, header names lowercased once. */
export interface ForwardSpec {
  readonly claims: readonly string[]
  readonly headers: readonly string[]
}

export function compileForward(map: Readonly<Record<string, string>> | undefined): ForwardSpec {
  const claims: string[] = []
  const headers: string[] = []
  if (map !== undefined) for (const [claim, header] of Object.entries(map)) { claims.push(claim); headers.push(header.toLowerCase()) }
  return { claims, headers }
}

const PLAIN = /^[\t\x20-\x7e]*$/
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/

/**
 * A claim as a header value: strings as they are, numbers and booleans in JSON form,
 * lists of plain values comma-joined, anything else as JSON. A value with a control
 * character is never forwarded (it could split the header); non-ASCII text is sent as
 * its UTF-8 bytes (undici writes header strings as latin1).
 */
export function claimHeaderValue(v: unknown): string | null {
  let s: string
  if (typeof v === 'string') s = v
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v)
  else if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean')) s = v.join(',')
  else if (v === undefined || v === null) return null
  else s = JSON.stringify(v)
  if (PLAIN.test(s)) return s
  if (CONTROL.test(s)) return null
  return Buffer.from(s, 'utf8').toString('latin1')
}

export function forwardPairs(claims: Readonly<Record<string, unknown>>, spec: ForwardSpec): string[] {
  const out: string[] = []
  for (let i = 0; i < spec.claims.length; i++) {
    const name = spec.claims[i]!
    const v = claimHeaderValue(Object.hasOwn(claims, name) ? claims[name] : undefined)
    if (v !== null) out.push(spec.headers[i]!, v)
  }
  return out
}

export function consumerOf(claims: Readonly<Record<string, unknown>>, names: readonly string[]): string | null {
  for (const n of names) {
    const v = Object.hasOwn(claims, n) ? claims[n] : undefined
    if (typeof v === 'string' && v !== '') return v
    if (typeof v === 'number') return String(v)
  }
  return null
}

/**
 * Applies a passing verdict: claims and consumer on the Exchange, claim headers replacing
 * any the client sent (always, so a client cannot supply them itself), token removed.
 */
export function admit(ex: Exchange, v: Verdict, spec: ForwardSpec, reader: TokenReader, forwardToken: boolean): undefined {
  ex.claims = v.claims as Record<string, unknown>
  ex.consumer = v.consumer
  for (let i = 0; i < spec.headers.length; i++) removeHeader(ex.headers, spec.headers[i]!)
  for (let i = 0; i < v.forward.length; i++) ex.headers.push(v.forward[i]!)
  if (!forwardToken) reader.strip(ex)
  return undefined
}

/** Text safe inside a quoted auth-param (RFC 9110 §11.2) and a JSON string. */
export function quotedSafe(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/["\\\x00-\x1f\x7f-\uffff]/g, '?')
}
