/**
 * One request/response through the gateway. A fixed-shape object: every field, policy
 * slots included, is declared here and set in the constructor, so V8 keeps one hidden
 * class for all exchanges (fastify's lib/request.js idea). It pins the runtime
 * (snapshot) it started on, so a reload never changes a request in flight.
 *
 * @module
 */
import type { Downstream } from './downstream.js'
import type { HeaderList } from './headers.js'
import type { Runtime, ApiRuntime, RouteRuntime } from './runtime.js'
import type { Endpoint, ServiceRuntime } from './upstream.js'
import type { ExchangeHooks, RequestBody, UpstreamCall } from './proxy.js'

export class Exchange {
  // ── request, copied out of uWS ──
  method: string
  /** Path as received (no query). */
  url: string
  /** Raw query string without "?" ("" when none). */
  query: string
  /** Headers forwarded upstream (hop-by-hop already removed). */
  headers: HeaderList
  /** Host header as received. */
  host: string
  /** Host header without port, lowercase (what host rules match). */
  hostname: string
  clientIp: string
  requestId: string
  /** Content-Length of the request, -1 when chunked, 0 when no body. */
  contentLength: number
  hasBody: boolean
  bytesIn = 0

  // ── routing ──
  readonly runtime: Runtime
  api: ApiRuntime | null = null
  route: RouteRuntime | null = null
  service: ServiceRuntime | null = null
  /** Path after base-path removal: what route and policy rules match (RuleInput). */
  path = '/'
  /** Rewritten path, before the endpoint's own prefix is added. */
  upstreamPath = '/'

  // ── response ──
  /** Response headers being forwarded; policies in the response phase edit this list. */
  responseHeaders: HeaderList | null = null
  readonly down: Downstream
  /** The request body reader, when the request has a body. */
  body: RequestBody | null = null
  /** The current upstream attempt. */
  call: UpstreamCall | null = null
  attempts = 0
  /** Endpoints already tried, kept only once a retry happens. */
  tried: Endpoint[] | null = null
  /** Set once when the exchange ends (hooks.done is idempotent through it). */
  ended = false
  // ── timing and telemetry (performance.now() milliseconds) ──
  readonly startedAt: number
  /** When the last upstream attempt was dispatched / answered / ended; 0 = not (yet). */
  upstreamStartedAt = 0
  upstreamHeadersAt = 0
  upstreamEndedAt = 0
  endedAt = 0
  /** Origin of the endpoint of the last attempt, for logs and metrics. */
  upstreamOrigin: string | null = null
  /** Upstream response status (0 when none came). */
  upstreamStatus = 0
  /** Telemetry slot: the tracing subscriber keeps its span state here. */
  trace: unknown = null
  /** The traceparent sent upstream, when tracing is on (tracing.ts: valid by construction). */
  traceparent: string | null = null
  /** Error code or outcome that ended it, null for a proxied response. */
  outcome: string | null = null

  // ── policy slots (one per policy that keeps per-request state) ──
  /** cors: the allowed Origin to echo in the response phase, or null. */
  corsOrigin: string | null = null
  /** Authenticated consumer (api-key name, basic-auth user, JWT subject): a rate-limit key and a log field. */
  consumer: string | null = null
  /** Verified token claims (jwt-validation, oauth2-introspection). */
  claims: Record<string, unknown> | null = null
  /** The policy that answered the request itself (a rejection, a preflight), for logs. */
  decidedBy: string | null = null
  /** Headers a policy adds to the response (RateLimit-*), applied in the response phase or on rejection. */
  extraResponseHeaders: HeaderList | null = null

  /** Worker-level callbacks (exchange end); the same object for every exchange. */
  readonly hooks: ExchangeHooks

  constructor(runtime: Runtime, hooks: ExchangeHooks, down: Downstream, method: string, url: string, query: string,
    headers: HeaderList, host: string, clientIp: string, requestId: string, contentLength: number, hasBody: boolean) {
    this.runtime = runtime
    this.hooks = hooks
    this.startedAt = performance.now()
    this.down = down
    this.method = method
    this.url = url
    this.query = query
    this.headers = headers
    this.host = host
    const colon = host.charCodeAt(0) === 91 /* [ */ ? host.indexOf(']') + 1 : host.lastIndexOf(':')
    this.hostname = (colon > 0 ? host.slice(0, colon) : host).toLowerCase()
    this.clientIp = clientIp
    this.requestId = requestId
    this.contentLength = contentLength
    this.hasBody = hasBody
  }
}
