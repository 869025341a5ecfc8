/**
 * HTTP calls to identity providers (JWKS documents, RFC 7662 introspection): one undici
 * Agent per worker, apart from the upstream pools, so IdP traffic never queues behind
 * proxied requests and a slow IdP cannot take upstream connections. Every call has one
 * deadline (connect, headers and body together) and a body size cap. Failures come back
 * as an `IdpError` with a stable code; callers map them to 503 GH_ERR_AUTH_UNAVAILABLE.
 *
 * @module
 */
import { Agent, request } from 'undici'

/**
 * Shared by every policy instance of the worker: policies are re-created on each reload,
 * and an Agent per instance would leave idle sockets behind with each old config.
 */
const agent = new Agent({
  connections: 16,
  keepAliveTimeout: 10_000,
  connect: { timeout: 10_000 },
})

export type IdpErrorCode = 'IDP_UNREACHABLE' | 'IDP_TIMEOUT' | 'IDP_STATUS' | 'IDP_BODY'

export class IdpError extends Error {
  readonly code: IdpErrorCode
  constructor(code: IdpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IdpError'
    this.code = code
  }
}

export interface IdpRequest {
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  timeoutMs: number
  /** Larger bodies are an error (a JWKS or an introspection answer is a few KB). */
  maxBytes: number
}

/** Sends one request and parses the JSON answer; any status but 200 is an IdpError. */
export async function idpJson(url: string, req: IdpRequest): Promise<unknown> {
  const signal = AbortSignal.timeout(req.timeoutMs)
  let res
  try {
    res = await request(url, {
      dispatcher: agent,
      method: req.method,
      headers: req.headers,
      body: req.body ?? null,
      signal,
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    })
  } catch (err) {
    throw signal.aborted || (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT'
      ? new IdpError('IDP_TIMEOUT', `no answer within ${req.timeoutMs} ms`, { cause: err })
      : new IdpError('IDP_UNREACHABLE', (err as Error).message, { cause: err })
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const c of res.body) {
      size += (c as Buffer).length
      if (size > req.maxBytes) {
        res.body.destroy()
        throw new IdpError('IDP_BODY', `answer larger than ${req.maxBytes} bytes`)
      }
      chunks.push(c as Buffer)
    }
  } catch (err) {
    if (err instanceof IdpError) throw err
    throw new IdpError(signal.aborted ? 'IDP_TIMEOUT' : 'IDP_UNREACHABLE', (err as Error).message, { cause: err })
  }
  if (res.statusCode !== 200) throw new IdpError('IDP_STATUS', `HTTP ${res.statusCode}`)
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch (err) {
    throw new IdpError('IDP_BODY', 'answer is not JSON', { cause: err })
  }
}
