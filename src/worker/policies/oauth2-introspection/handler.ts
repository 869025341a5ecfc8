/**
 * oauth2-introspection: asks the authorization server whether an opaque token is active
 * (RFC 7662) and lets the request through with the answer as its claims, or answers
 * 401/403/503 itself (RFC 6750 challenges).
 *
 * - The call: POST `token=…&token_type_hint=…`, client credentials in HTTP Basic
 *   (RFC 6749 §2.3.1: id and secret form-encoded, then base64), one deadline.
 * - Results are cached per token (keyed by its SHA-256): active ones until the token's
 *   `exp`, capped by `cacheTtlMs`; inactive ones for `negativeCacheTtlMs`. A cached token
 *   is judged synchronously.
 * - Concurrent requests with the same uncached token share one call (`inflight`).
 * - The IdP unreachable, slow, or answering anything but a 200 RFC 7662 document: 503
 *   GH_ERR_AUTH_UNAVAILABLE, never cached, never a 401 (the token may well be valid).
 *
 * @module
 * @example
 *   policyRef: { name: oauth2-introspection }
 *   config: { introspectionUrl: https://idp.example/oauth2/introspect, clientId: gateway,
 *             clientSecret: "${env:INTROSPECTION_SECRET}", requiredScopes: [orders:read] }
 */
import type { Exchange } from '../../exchange.js'
import { createLogger } from '../../../telemetry/runtime-log.js'
import type { LocalResponse, PolicyContext, PolicyHandlers, PolicyModule, RequestResult } from '../types.js'
import { admit, Challenges, compileForward, consumerOf, forwardPairs, quotedSafe, type Verdict } from '../../auth/claims.js'
import { idpJson } from '../../auth/idp-http.js'
import { ExpiringLru, tokenKey } from '../../auth/lru.js'
import { tokenReader } from '../../auth/token.js'
import { schema, order, type IntrospectionConfig } from './schema.js'

const log = createLogger('oauth2-introspection', 'warn')

/** A judged token: a verdict (active) or the response to send (inactive). */
type Outcome = Verdict | LocalResponse

function isVerdict(o: Outcome): o is Verdict {
  return (o as Verdict).claims !== undefined
}

/** application/x-www-form-urlencoded, as RFC 6749 §2.3.1 and RFC 7662 §2.1 require. */
function formEncode(s: string): string {
  return new URLSearchParams([['', s]]).toString().slice(1)
}

/**
 * Per-policy state kept across reloads that leave the policy unchanged (same `ctx.id`), so
 * a reload does not re-introspect every live token. Bounded like jwt-validation's.
 */
interface State { cache: ExpiringLru<Outcome>; inflight: Map<string, Promise<Outcome>> }
const states = new Map<string, State>()
const MAX_STATES = 64

function stateFor(id: string, size: number): State {
  let s = states.get(id)
  if (s === undefined) s = { cache: new ExpiringLru<Outcome>(size), inflight: new Map() }
  else states.delete(id)
  states.set(id, s)
  if (states.size > MAX_STATES) states.delete(states.keys().next().value as string)
  return s
}

const MAX_ANSWER_BYTES = 256 * 1024
const CONSUMER_CLAIMS = ['sub', 'client_id', 'username']

export const oauth2Introspection: PolicyModule<IntrospectionConfig> = {
  name: 'oauth2-introspection',
  order,
  schema,
  create(config, ctx: PolicyContext): PolicyHandlers {
    const ch = new Challenges(quotedSafe(config.realm ?? ctx.api))
    const reader = tokenReader(config.tokenSource)
    const forward = compileForward(config.forwardClaims)
    const forwardToken = config.forwardToken ?? false
    const url = config.introspectionUrl
    const timeoutMs = config.timeoutMs ?? 3000
    const ttlMs = config.cacheTtlMs ?? 60_000
    const negativeTtlMs = config.negativeCacheTtlMs ?? 5000
    const headers = {
      authorization: 'Basic ' + Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`).toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    }
    const bodyTail = `&token_type_hint=${formEncode(config.tokenTypeHint ?? 'access_token')}`
    const scopes = config.requiredScopes ?? []
    const scopeDenial = scopes.length === 0 ? null
      : ch.forbidden(quotedSafe(`token lacks a required scope (${scopes.join(' ')})`), scopes.join(' '))
    const inactive = ch.invalid('token is not active')
    const { cache, inflight } = stateFor(ctx.id, config.cacheSize ?? 10_000)

    function hasScopes(claims: Readonly<Record<string, unknown>>): boolean {
      const s = claims.scope
      if (typeof s !== 'string') return false
      const have = s.split(' ')
      for (const want of scopes) if (!have.includes(want)) return false
      return true
    }

    async function introspect(token: string, key: string): Promise<Outcome> {
      let doc: unknown
      try {
        doc = await idpJson(url, { method: 'POST', headers, body: `token=${formEncode(token)}${bodyTail}`, timeoutMs, maxBytes: MAX_ANSWER_BYTES })
      } catch (err) {
        log.warn('GH_INTROSPECTION_FAILED', `introspection failed: ${(err as Error).message}`, { policy: ctx.id, code: (err as { code?: string }).code })
        return ch.unavailable
      }
      if (doc === null || typeof doc !== 'object' || typeof (doc as { active?: unknown }).active !== 'boolean') {
        log.warn('GH_INTROSPECTION_FAILED', 'introspection answer has no boolean "active"', { policy: ctx.id })
        return ch.unavailable
      }
      const now = Date.now()
      if ((doc as { active: boolean }).active !== true) {
        if (negativeTtlMs > 0) cache.set(key, inactive, now + negativeTtlMs)
        return inactive
      }
      const claims = Object.freeze(doc as Record<string, unknown>)
      const denied = scopeDenial !== null && !hasScopes(claims)
      const v: Verdict = {
        claims,
        consumer: consumerOf(claims, CONSUMER_CLAIMS),
        forward: denied ? [] : forwardPairs(claims, forward),
        denial: denied ? scopeDenial : null,
      }
      const exp = claims.exp
      const until = typeof exp === 'number' ? Math.min(now + ttlMs, exp * 1000) : now + ttlMs
      if (until > now) cache.set(key, v, until)
      return v
    }

    function apply(ex: Exchange, o: Outcome): RequestResult {
      if (!isVerdict(o)) return o
      return o.denial ?? admit(ex, o, forward, reader, forwardToken)
    }

    return {
      request: function introspectToken(ex: Exchange) {
        const token = reader.read(ex)
        if (token === null) return ch.missing
        const key = tokenKey(token)
        const hit = cache.get(key, Date.now())
        if (hit !== undefined) return apply(ex, hit)
        let p = inflight.get(key)
        if (p === undefined) {
          p = introspect(token, key)
          inflight.set(key, p)
          const done = (): void => { inflight.delete(key) }
          p.then(done, done)
        }
        return p.then((o) => apply(ex, o))
      },
      response: null,
    }
  },
}
