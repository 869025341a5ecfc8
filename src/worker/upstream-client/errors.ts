/**
 * Failures of the HTTP/1.1 upstream client. They carry undici's error codes for the same
 * situations, so `upstreamErrorCode` (upstream.ts) stays the one mapping from upstream
 * failures to Gatehouse codes whichever client ran the attempt. Parser failures keep
 * llhttp's own `HPE_*` code, as undici's do.
 *
 * @module
 */

export class UpstreamClientError extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
    this.name = 'UpstreamClientError'
  }
}

export const connectTimeout = (ms: number): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_CONNECT_TIMEOUT', `connect timeout after ${ms} ms`)
export const headersTimeout = (ms: number): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_HEADERS_TIMEOUT', `no response head within ${ms} ms`)
export const bodyTimeout = (ms: number): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_BODY_TIMEOUT', `no response body bytes for ${ms} ms`)
export const otherSideClosed = (): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_SOCKET', 'other side closed')
export const poolClosed = (): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_CLOSED', 'the endpoint was removed by a reload')
export const requestAborted = (): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_ABORTED', 'request aborted')
export const invalidRequest = (what: string): UpstreamClientError =>
  new UpstreamClientError('UND_ERR_INVALID_ARG', what)
export const unexpectedUpgrade = (): UpstreamClientError =>
  new UpstreamClientError('HPE_UNEXPECTED_UPGRADE', 'upstream switched protocols unasked')

/** llhttp's parse errors, renamed where undici has a code of its own for the case. */
export function parseFailure(err: Error & { code: string }): UpstreamClientError {
  if (err.code === 'HPE_HEADER_OVERFLOW') return new UpstreamClientError('UND_ERR_HEADERS_OVERFLOW', 'response head larger than maxResponseHeaderBytes')
  return new UpstreamClientError(err.code, `upstream response does not parse: ${(err as { reason?: string }).reason ?? err.message}`)
}
