/**
 * White-box companion of upstream-errors.test.ts: every error class undici 7 exports is
 * mapped on purpose by the one function, so a new undici class or code fails here until
 * someone decides what the client should see and whether it counts against an endpoint.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { errors } from 'undici'
import { isConnectFailure, isEndpointFailure, upstreamErrorCode } from '../../src/worker/upstream.js'

/** Class name → expected Gatehouse code. */
const BY_CLASS: Record<string, string> = {
  AbortError: 'GH_ERR_INTERNAL',
  RequestAbortedError: 'GH_ERR_INTERNAL',
  HTTPParserError: 'GH_ERR_UPSTREAM_PROTOCOL',
  UndiciError: 'GH_ERR_INTERNAL',
  HeadersTimeoutError: 'GH_ERR_UPSTREAM_TIMEOUT',
  BodyTimeoutError: 'GH_ERR_UPSTREAM_TIMEOUT',
  HeadersOverflowError: 'GH_ERR_UPSTREAM_PROTOCOL',
  RequestContentLengthMismatchError: 'GH_ERR_INTERNAL',
  ConnectTimeoutError: 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT',
  InvalidArgumentError: 'GH_ERR_REQUEST_MALFORMED',
  InvalidReturnValueError: 'GH_ERR_INTERNAL',
  ClientDestroyedError: 'GH_ERR_UPSTREAM_UNAVAILABLE',
  ClientClosedError: 'GH_ERR_UPSTREAM_UNAVAILABLE',
  InformationalError: 'GH_ERR_UPSTREAM_RESET',
  SocketError: 'GH_ERR_UPSTREAM_RESET',
  NotSupportedError: 'GH_ERR_INTERNAL',
  ResponseContentLengthMismatchError: 'GH_ERR_UPSTREAM_PROTOCOL',
  BalancedPoolMissingUpstreamError: 'GH_ERR_UPSTREAM_UNAVAILABLE',
  ResponseExceededMaxSizeError: 'GH_ERR_UPSTREAM_PROTOCOL',
  MaxOriginsReachedError: 'GH_ERR_INTERNAL',
  // Interceptor / proxy / WebSocket errors: not reachable through a plain Pool today.
  RequestRetryError: 'GH_ERR_UPSTREAM_PROTOCOL',
  ResponseError: 'GH_ERR_UPSTREAM_PROTOCOL',
  SecureProxyConnectionError: 'GH_ERR_UPSTREAM_PROTOCOL',
  Socks5ProxyError: 'GH_ERR_UPSTREAM_PROTOCOL',
  MessageSizeExceededError: 'GH_ERR_UPSTREAM_PROTOCOL',
}

/** Socket-level errno codes an upstream connection can fail with. */
const BY_ERRNO: Record<string, string> = {
  ECONNREFUSED: 'GH_ERR_UPSTREAM_REFUSED',
  EHOSTUNREACH: 'GH_ERR_UPSTREAM_REFUSED',
  ENETUNREACH: 'GH_ERR_UPSTREAM_REFUSED',
  ENOTFOUND: 'GH_ERR_UPSTREAM_REFUSED',
  EAI_AGAIN: 'GH_ERR_UPSTREAM_REFUSED',
  EADDRNOTAVAIL: 'GH_ERR_UPSTREAM_REFUSED',
  ETIMEDOUT: 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT',
  ECONNRESET: 'GH_ERR_UPSTREAM_RESET',
  ECONNABORTED: 'GH_ERR_UPSTREAM_RESET',
  EPIPE: 'GH_ERR_UPSTREAM_RESET',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'GH_ERR_UPSTREAM_PROTOCOL',
  ERR_TLS_CERT_ALTNAME_INVALID: 'GH_ERR_UPSTREAM_PROTOCOL',
  ERR_SSL_WRONG_VERSION_NUMBER: 'GH_ERR_UPSTREAM_PROTOCOL',
}

function instantiate(C: new (...args: never[]) => Error): Error {
  const Ctor = C as unknown as new (...args: unknown[]) => Error
  // A few constructors want extra arguments; 'message' alone builds the rest.
  try { return new Ctor('message') } catch { return new Ctor('message', 'CODE', {}) }
}

describe('the one mapping from undici failures to Gatehouse codes', () => {
  test('every error class undici exports has a deliberate mapping', () => {
    const exported = Object.keys(errors).sort()
    assert.deepEqual(exported, Object.keys(BY_CLASS).sort(), 'undici changed its error classes: map the new ones')
    for (const [name, C] of Object.entries(errors)) {
      const err = instantiate(C as new (...args: never[]) => Error) as Error & { code?: string }
      assert.equal(upstreamErrorCode(err), BY_CLASS[name], `${name} (${String(err.code)})`)
    }
  })

  test('socket and TLS errno codes map to refused, connect timeout, reset or protocol', () => {
    for (const [code, expected] of Object.entries(BY_ERRNO)) {
      assert.equal(upstreamErrorCode(Object.assign(new Error('x'), { code })), expected, code)
    }
  })

  test('an llhttp parse failure is a protocol error although undici leaves its code undefined', () => {
    const err = new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol')
    assert.equal((err as Error & { code?: string }).code, undefined)
    assert.equal(upstreamErrorCode(err), 'GH_ERR_UPSTREAM_PROTOCOL')
  })

  test('only failures of the endpoint count toward passive ejection', () => {
    const counted = ['GH_ERR_UPSTREAM_REFUSED', 'GH_ERR_UPSTREAM_RESET', 'GH_ERR_UPSTREAM_PROTOCOL',
      'GH_ERR_UPSTREAM_CONNECT_TIMEOUT', 'GH_ERR_UPSTREAM_TIMEOUT']
    for (const [name, code] of Object.entries(BY_CLASS)) {
      assert.equal(isEndpointFailure(code as Parameters<typeof isEndpointFailure>[0]), counted.includes(code), name)
    }
    // A client abort reaches onError as our own code-less Error or as RequestAbortedError.
    assert.equal(isEndpointFailure(upstreamErrorCode(new Error('client aborted') as Error & { code?: string })), false)
    assert.equal(isEndpointFailure(upstreamErrorCode(new errors.RequestAbortedError())), false)
  })

  test('only failures before the request was written allow a retry elsewhere', () => {
    for (const code of ['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      assert.equal(isConnectFailure({ code }), true, code)
    }
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED', undefined]) {
      assert.equal(isConnectFailure(code === undefined ? {} : { code }), false, String(code))
    }
  })
})
