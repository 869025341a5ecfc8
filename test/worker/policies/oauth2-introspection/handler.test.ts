/**
 * White-box: the oauth2-introspection factory against a real RFC 7662 endpoint on
 * 127.0.0.1 (node:http): the request it sends, caching (positive, negative, bounded by
 * exp), shared in-flight calls, scopes, and 503 on every kind of IdP failure.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { Exchange } from '../../../../src/worker/exchange.js'
import { getHeader, type HeaderList } from '../../../../src/worker/headers.js'
import { oauth2Introspection } from '../../../../src/worker/policies/oauth2-introspection/handler.js'
import type { IntrospectionConfig } from '../../../../src/worker/policies/oauth2-introspection/schema.js'
import type { LocalResponse, RequestHandler, RequestResult } from '../../../../src/worker/policies/types.js'

let server: http.Server
let url: string
const seen: Array<{ auth: string | undefined; type: string | undefined; body: URLSearchParams }> = []
/** token → answer; "!down" destroys the socket, "!500" answers 500, "!slow" never answers in time, "!text" is not JSON. */
const answers = new Map<string, object | string>()
let delayMs = 0

before(async () => {
  server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c: Buffer) => { raw += c.toString() })
    req.on('end', () => {
      const body = new URLSearchParams(raw)
      seen.push({ auth: req.headers.authorization, type: req.headers['content-type'], body })
      const a = answers.get(body.get('token') ?? '') ?? { active: false }
      if (a === '!down') { req.socket.destroy(); return }
      if (a === '!500') { res.writeHead(500).end('{}'); return }
      if (a === '!text') { res.end('<html>'); return }
      if (a === '!slow') { setTimeout(() => res.end('{"active":true}'), 2000).unref(); return }
      setTimeout(() => res.end(JSON.stringify(a)), delayMs)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

let ids = 0
function handler(over: Partial<IntrospectionConfig> = {}): RequestHandler {
  const config = { introspectionUrl: url, clientId: 'gate way', clientSecret: 's3cr:t+/', timeoutMs: 300, ...over } as IntrospectionConfig
  const h = oauth2Introspection.create(config, { id: `i${++ids}`, api: 'orders', services: { leases: null } }).request
  assert.ok(h !== null)
  return h
}

function exchange(token: string | null, extra: HeaderList = []): Exchange {
  const headers: HeaderList = token === null ? [...extra] : ['authorization', `Bearer ${token}`, ...extra]
  return { headers, query: '', claims: null, consumer: null } as unknown as Exchange
}

async function settle(r: RequestResult | Promise<RequestResult>): Promise<RequestResult> {
  return await r
}

function rejection(r: RequestResult, status: number, code: string): LocalResponse {
  assert.ok(r !== undefined, 'expected a rejection')
  assert.equal(r.status, status)
  assert.equal((JSON.parse(r.body) as { code: string }).code, code)
  return r
}

const future = () => Math.floor(Date.now() / 1000) + 600

describe('oauth2-introspection handler', () => {
  test('it POSTs the token with a type hint and form-encoded client credentials in HTTP Basic', async () => {
    answers.set('tok-a', { active: true, sub: 'alice', exp: future() })
    seen.length = 0
    assert.equal(await settle(handler()(exchange('tok-a'))), undefined)
    assert.equal(seen.length, 1)
    assert.equal(seen[0]!.type, 'application/x-www-form-urlencoded')
    assert.equal(seen[0]!.body.get('token'), 'tok-a')
    assert.equal(seen[0]!.body.get('token_type_hint'), 'access_token')
    assert.equal(seen[0]!.auth, `Basic ${Buffer.from('gate+way:s3cr%3At%2B%2F').toString('base64')}`)
  })

  test('an active token passes with its answer as claims, a consumer, claim headers, and without the token', async () => {
    answers.set('tok-b', { active: true, client_id: 'svc', username: 'bob', scope: 'a b', exp: future() })
    const e = exchange('tok-b', ['x-scope', 'spoofed'])
    assert.equal(await settle(handler({ forwardClaims: { scope: 'x-scope', client_id: 'x-client' } })(e)), undefined)
    assert.equal(e.consumer, 'svc', 'sub is absent, so client_id')
    assert.equal(e.claims!.username, 'bob')
    assert.deepEqual(e.headers, ['x-scope', 'a b', 'x-client', 'svc'])
  })

  test('concurrent requests with one token share one call, and a repeated token is answered synchronously', async () => {
    answers.set('tok-c', { active: true, sub: 'carol', exp: future() })
    delayMs = 50
    seen.length = 0
    const h = handler()
    const rs = await Promise.all(Array.from({ length: 10 }, () => settle(h(exchange('tok-c')))))
    delayMs = 0
    assert.ok(rs.every((r) => r === undefined))
    assert.equal(seen.length, 1)
    const e = exchange('tok-c')
    assert.equal(h(e), undefined, 'cached: no promise')
    assert.equal(e.consumer, 'carol')
    assert.equal(seen.length, 1)
  })

  test('an inactive token is 401 invalid_token, cached for negativeCacheTtlMs only', async () => {
    answers.set('tok-d', { active: false })
    seen.length = 0
    const h = handler({ negativeCacheTtlMs: 150 })
    const r = rejection(await settle(h(exchange('tok-d'))), 401, 'GH_ERR_AUTH_INVALID')
    assert.equal(getHeader(r.headers!, 'www-authenticate'), 'Bearer realm="orders", error="invalid_token", error_description="token is not active"')
    assert.equal((h(exchange('tok-d')) as LocalResponse).status, 401, 'cached: synchronous')
    assert.equal(seen.length, 1)
    await new Promise((res) => setTimeout(res, 200))
    await settle(h(exchange('tok-d')))
    assert.equal(seen.length, 2)
  })

  test('an active result is cached until exp even when cacheTtlMs is longer', async () => {
    answers.set('tok-e', { active: true, sub: 'e', exp: Math.floor(Date.now() / 1000) + 1 })
    seen.length = 0
    const h = handler({ cacheTtlMs: 600_000 })
    await settle(h(exchange('tok-e')))
    assert.equal(h(exchange('tok-e')), undefined)
    assert.equal(seen.length, 1)
    await new Promise((res) => setTimeout(res, 1100))
    await settle(h(exchange('tok-e')))
    assert.equal(seen.length, 2)
  })

  test('a missing required scope is 403 insufficient_scope naming the scopes', async () => {
    answers.set('tok-f', { active: true, sub: 'f', scope: 'orders:read', exp: future() })
    const h = handler({ requiredScopes: ['orders:read', 'orders:write'] })
    const r = rejection(await settle(h(exchange('tok-f'))), 403, 'GH_ERR_AUTH_FORBIDDEN')
    assert.match(String(getHeader(r.headers!, 'www-authenticate')), /error="insufficient_scope".*scope="orders:read orders:write"$/)
    answers.set('tok-g', { active: true, sub: 'g', scope: 'orders:write x orders:read', exp: future() })
    assert.equal(await settle(h(exchange('tok-g'))), undefined)
  })

  test('no token is 401 GH_ERR_AUTH_MISSING without any call', async () => {
    seen.length = 0
    const r = rejection(await settle(handler()(exchange(null))), 401, 'GH_ERR_AUTH_MISSING')
    assert.equal(getHeader(r.headers!, 'www-authenticate'), 'Bearer realm="orders"')
    assert.equal(seen.length, 0)
  })

  test('an unreachable, failing, slow or nonsensical IdP is 503 GH_ERR_AUTH_UNAVAILABLE and never cached', async () => {
    const h = handler()
    for (const mode of ['!down', '!500', '!text', '!slow']) {
      answers.set(`tok-${mode}`, mode)
      rejection(await settle(h(exchange(`tok-${mode}`))), 503, 'GH_ERR_AUTH_UNAVAILABLE')
      answers.set(`tok-${mode}`, { active: true, sub: 'x', exp: future() })
      assert.equal(await settle(h(exchange(`tok-${mode}`))), undefined, `${mode}: the next call asks again`)
    }
    answers.set('tok-noactive', { sub: 'x' })
    rejection(await settle(h(exchange('tok-noactive'))), 503, 'GH_ERR_AUTH_UNAVAILABLE')
    const closed = handler({ introspectionUrl: 'http://127.0.0.1:1/introspect' })
    rejection(await settle(closed(exchange('tok-a'))), 503, 'GH_ERR_AUTH_UNAVAILABLE')
  })
})
