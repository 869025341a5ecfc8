/**
 * Admin HTTP API of the primary (node:http; never on the data path):
 * GET /live, /ready, /status, /config, /metrics (Prometheus); POST /reload.
 *
 * It binds loopback by default; a non-loopback address is refused unless an access token
 * is configured, and with a token every endpoint but /live wants `Authorization: Bearer`.
 *
 * @module
 */
import http from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { ERRORS, problemBody, type ErrorCode } from '../errors.js'
import { METRICS_CONTENT_TYPE } from '../telemetry/metrics-primary.js'

export interface AdminHandlers {
  ready(): { ready: boolean; reason: string }
  status(): unknown
  config(): unknown
  reload(): Promise<{ ok: true; version: string; changed: boolean } | { ok: false; invalid: boolean; errors: string[] }>
  /** Prometheus exposition text of all workers merged; null while metrics are disabled (404). */
  metrics(): Promise<string | null>
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n'
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

function sendProblem(res: http.ServerResponse, code: ErrorCode, detail?: string, extra?: Record<string, unknown>): void {
  const e = ERRORS[code]
  const body = extra === undefined ? problemBody(e, detail) : JSON.stringify({ ...JSON.parse(problemBody(e, detail)), ...extra })
  send(res, e.status, body, 'application/problem+json')
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false
  const a = Buffer.from(header.slice(7))
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

export async function startAdminServer(host: string, port: number, token: string | null, h: AdminHandlers): Promise<http.Server> {
  if (!isLoopback(host) && token === null) {
    throw new Error(`admin address ${host}:${port} is not loopback; set Configuration.spec.admin.token to expose it`)
  }
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]
    if (url === '/live' && req.method === 'GET') { send(res, 200, { live: true }); return }
    if (token !== null && !tokenMatches(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer')
      sendProblem(res, 'GH_ERR_ADMIN_UNAUTHORIZED')
      return
    }
    const route = `${req.method} ${url}`
    switch (route) {
      case 'GET /ready': {
        const r = h.ready()
        send(res, r.ready ? 200 : 503, r)
        return
      }
      case 'GET /status': send(res, 200, h.status()); return
      case 'GET /config': send(res, 200, h.config()); return
      case 'GET /metrics':
        h.metrics().then((text) => {
          if (text === null) sendProblem(res, 'GH_ERR_ADMIN_NOT_FOUND', 'metrics are disabled (Configuration.spec.metrics.enabled)')
          else send(res, 200, text, METRICS_CONTENT_TYPE)
        }, (err: Error) => sendProblem(res, 'GH_ERR_INTERNAL', `metrics collection failed: ${err.message}`))
        return
      case 'POST /reload':
        req.resume()
        h.reload().then((r) => {
          if (r.ok) send(res, 200, r)
          else if (r.invalid) sendProblem(res, 'GH_ERR_CONFIG_INVALID', `${r.errors.length} error(s); the running config is unchanged`, { errors: r.errors })
          // Valid config that a worker could not apply (e.g. a port in use): rolled back.
          else sendProblem(res, 'GH_ERR_RELOAD_FAILED', `${r.errors.join('; ')}; the running config is unchanged`, { errors: r.errors })
        }, (err: Error) => sendProblem(res, 'GH_ERR_RELOAD_FAILED', err.message))
        return
      default:
        sendProblem(res, 'GH_ERR_ADMIN_NOT_FOUND', route)
    }
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}
