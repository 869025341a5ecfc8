/**
 * cors: answers preflights itself and adds CORS headers to allowed simple requests
 * (Fetch standard, "CORS protocol"). Every header value that does not depend on the
 * request Origin is joined once in the factory (hono's cors middleware does the same).
 *
 * - Preflight (OPTIONS + Origin + Access-Control-Request-Method): answered here with 204
 *   and never sent upstream. A disallowed origin gets 204 without CORS headers (the
 *   browser then blocks it) or 403 with `rejectUnknownOrigins`.
 * - Other requests with an allowed Origin: the response gets Allow-Origin (+ Credentials,
 *   Expose-Headers) and `Vary: Origin` when the answer depends on the Origin.
 * - CORS headers from the upstream are always dropped: the policy alone decides.
 *
 * @module
 */
import type { PolicyModule, PolicyHandlers, LocalResponse } from '../types.js'
import type { Exchange } from '../../exchange.js'
import { getHeader, removeHeader, setHeader } from '../../headers.js'
import { problem } from '../../local-response.js'
import { schema, order, type CorsConfig } from './schema.js'

const DEFAULT_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE']
const RESPONSE_CORS_HEADERS = [
  'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers',
]

export const cors: PolicyModule<CorsConfig> = {
  name: 'cors',
  order,
  schema,
  create(config): PolicyHandlers {
    const any = config.allowOrigins.includes('*')
    const exact = new Set(config.allowOrigins.filter((o) => o !== '*').map((o) => o.toLowerCase()))
    const patterns = (config.allowOriginPatterns ?? []).map((p) => new RegExp(`^(?:${p})$`, 'i'))
    const credentials = config.allowCredentials ?? false
    // With credentials the Fetch standard forbids "*": echo the Origin instead.
    const echoOrigin = !any || credentials
    const allowMethods = (config.allowMethods ?? DEFAULT_METHODS).join(', ')
    const allowHeaders = config.allowHeaders === undefined ? null : config.allowHeaders.join(', ')
    const exposeHeaders = config.exposeHeaders === undefined || config.exposeHeaders.length === 0
      ? null : config.exposeHeaders.join(', ')
    const maxAge = config.maxAgeSeconds === undefined ? null : String(config.maxAgeSeconds)
    const reject = config.rejectUnknownOrigins ?? false
    const forbidden = problem('GH_ERR_POLICY_CORS_FORBIDDEN', 'origin not allowed')
    const preflightDenied: LocalResponse = { status: 204, headers: null, body: '', contentType: null, code: null }

    function allowed(origin: string): boolean {
      if (any) return true
      if (exact.has(origin.toLowerCase())) return true
      for (let i = 0; i < patterns.length; i++) if (patterns[i]!.test(origin)) return true
      return false
    }

    function preflight(ex: Exchange, origin: string): LocalResponse {
      if (!allowed(origin)) return reject ? forbidden : preflightDenied
      const h: string[] = ['access-control-allow-origin', echoOrigin ? origin : '*', 'access-control-allow-methods', allowMethods]
      const asked = getHeader(ex.headers, 'access-control-request-headers')
      const hdrs = allowHeaders ?? (asked === undefined ? null : String(asked))
      if (hdrs !== null && hdrs !== '') h.push('access-control-allow-headers', hdrs)
      if (credentials) h.push('access-control-allow-credentials', 'true')
      if (maxAge !== null) h.push('access-control-max-age', maxAge)
      if (echoOrigin || allowHeaders === null) h.push('vary', 'Origin, Access-Control-Request-Headers')
      return { status: 204, headers: h, body: '', contentType: null, code: null }
    }

    return {
      request: function corsRequest(ex: Exchange) {
        const o = getHeader(ex.headers, 'origin')
        if (o === undefined) return undefined
        const origin = String(o)
        if (ex.method === 'OPTIONS' && getHeader(ex.headers, 'access-control-request-method') !== undefined) {
          return preflight(ex, origin)
        }
        if (allowed(origin)) ex.corsOrigin = origin
        else if (reject) return forbidden
        return undefined
      },
      response: function corsResponse(ex: Exchange) {
        const h = ex.responseHeaders
        if (h === null) return
        // The gateway owns CORS for this API: upstream opinions are dropped, never merged,
        // so an upstream cannot widen what the policy allows.
        for (const n of RESPONSE_CORS_HEADERS) removeHeader(h, n)
        if (ex.corsOrigin === null) return
        h.push('access-control-allow-origin', echoOrigin ? ex.corsOrigin : '*')
        if (credentials) h.push('access-control-allow-credentials', 'true')
        if (exposeHeaders !== null) h.push('access-control-expose-headers', exposeHeaders)
        if (echoOrigin) {
          const vary = getHeader(h, 'vary')
          setHeader(h, 'vary', vary === undefined || vary === '' ? 'Origin' : `${String(vary)}, Origin`)
        }
      },
    }
  },
}
