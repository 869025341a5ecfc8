/**
 * White-box: the jwt-validation factory with PEM keys and an HMAC secret, called with a
 * minimal Exchange-like object: what passes, what is rejected with which challenge, what
 * reaches the upstream, and that a verified token is answered synchronously next time.
 */
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose'
import type { Exchange } from '../../../../src/worker/exchange.js'
import { getHeader, type HeaderList } from '../../../../src/worker/headers.js'
import { jwtValidation } from '../../../../src/worker/policies/jwt-validation/handler.js'
import type { JwtValidationConfig } from '../../../../src/worker/policies/jwt-validation/schema.js'
import type { LocalResponse, RequestHandler, RequestResult } from '../../../../src/worker/policies/types.js'

const SECRET = 'an-hmac-secret-of-at-least-32-bytes!'
let rsa: { privateKey: CryptoKey; publicKey: CryptoKey; pem: string }
let rsa2: { privateKey: CryptoKey; publicKey: CryptoKey; pem: string }
let ec: { privateKey: CryptoKey; pem: string }

before(async () => {
  const a = await generateKeyPair('RS256', { extractable: true })
  const b = await generateKeyPair('RS256', { extractable: true })
  const e = await generateKeyPair('ES256', { extractable: true })
  rsa = { ...a, pem: await exportSPKI(a.publicKey) }
  rsa2 = { ...b, pem: await exportSPKI(b.publicKey) }
  ec = { privateKey: e.privateKey, pem: await exportSPKI(e.publicKey) }
})

let ids = 0
function handler(config: Partial<JwtValidationConfig>): RequestHandler {
  const h = jwtValidation.create({ algorithms: ['RS256'], ...config } as JwtValidationConfig, { id: `t${++ids}`, api: 'orders', services: { leases: null } }).request
  assert.ok(h !== null)
  return h
}

function exchange(headers: HeaderList): Exchange {
  return { headers, query: '', claims: null, consumer: null } as unknown as Exchange
}

const now = () => Math.floor(Date.now() / 1000)

function sign(key: CryptoKey | Uint8Array, alg: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', ...claims }).setProtectedHeader({ alg, ...header }).setIssuedAt().setExpirationTime(now() + 300).sign(key)
}

async function settle(r: RequestResult | Promise<RequestResult>): Promise<RequestResult> {
  return await r
}

function rejection(r: RequestResult, status: number, code: string): string {
  assert.ok(r !== undefined, 'expected a rejection')
  const lr = r as LocalResponse
  assert.equal(lr.status, status)
  assert.equal((JSON.parse(lr.body) as { code: string }).code, code)
  return String(getHeader(lr.headers ?? [], 'www-authenticate'))
}

describe('jwt-validation handler', () => {
  test('a valid token passes once asynchronously, then synchronously from the verified-token cache', async () => {
    const h = handler({ publicKeys: [rsa.pem], forwardClaims: { sub: 'X-User', roles: 'x-roles' } })
    const token = await sign(rsa.privateKey, 'RS256', { roles: ['a', 'b'] })
    const e1 = exchange(['authorization', `Bearer ${token}`, 'x-user', 'spoofed'])
    const first = h(e1)
    assert.ok(first instanceof Promise, 'the first sight of a token waits for WebCrypto')
    assert.equal(await first, undefined)
    assert.equal(e1.consumer, 'alice')
    assert.equal(e1.claims!.sub, 'alice')
    assert.deepEqual(e1.headers, ['x-user', 'alice', 'x-roles', 'a,b'], 'token stripped, claim headers replace client ones')
    const e2 = exchange(['authorization', `Bearer ${token}`])
    assert.equal(h(e2), undefined, 'the same token again is answered synchronously')
    assert.equal(e2.consumer, 'alice')
  })

  test('without a token the answer is 401 GH_ERR_AUTH_MISSING with a realm challenge', async () => {
    const h = handler({ publicKeys: [rsa.pem] })
    assert.equal(rejection(await settle(h(exchange([]))), 401, 'GH_ERR_AUTH_MISSING'), 'Bearer realm="orders"')
    assert.equal(rejection(await settle(h(exchange(['authorization', 'Basic YTpi']))), 401, 'GH_ERR_AUTH_MISSING'), 'Bearer realm="orders"')
  })

  test('alg none, an alg outside the list and garbage are rejected synchronously', async () => {
    const h = handler({ publicKeys: [rsa.pem] })
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const none = `${enc({ alg: 'none' })}.${enc({ sub: 'mallory', exp: now() + 60 })}.`
    for (const [tok, why] of [[none, 'algorithm not allowed'], [await sign(ec.privateKey, 'ES256'), 'algorithm not allowed'], ['not-a-jwt', 'malformed token']] as const) {
      const r = h(exchange(['authorization', `Bearer ${tok}`]))
      assert.ok(!(r instanceof Promise))
      assert.equal(rejection(r, 401, 'GH_ERR_AUTH_INVALID'), `Bearer realm="orders", error="invalid_token", error_description="${why}"`)
    }
  })

  test('an HS256 token signed with the RSA public key as the secret never passes', async () => {
    const forged = await sign(new TextEncoder().encode(rsa.pem), 'HS256')
    const rsOnly = handler({ publicKeys: [rsa.pem] })
    assert.match(rejection(await settle(rsOnly(exchange(['authorization', `Bearer ${forged}`]))), 401, 'GH_ERR_AUTH_INVALID'), /algorithm not allowed/)
    const both = handler({ algorithms: ['RS256', 'HS256'], publicKeys: [rsa.pem], secret: SECRET })
    assert.match(rejection(await settle(both(exchange(['authorization', `Bearer ${forged}`]))), 401, 'GH_ERR_AUTH_INVALID'), /invalid signature/)
    assert.equal(await settle(both(exchange(['authorization', `Bearer ${await sign(new TextEncoder().encode(SECRET), 'HS256')}`]))), undefined)
  })

  test('exp, nbf, iss and aud failures name their reason; the clock skew is honoured', async () => {
    const h = handler({ publicKeys: [rsa.pem], issuer: 'https://idp', audience: ['orders', 'billing'], clockSkewSeconds: 30 })
    const ok = { iss: 'https://idp', aud: 'billing' }
    const cases: Array<[JWTPayload, string | null]> = [
      [{ ...ok }, null],
      [{ ...ok, exp: now() - 10 }, null],
      [{ ...ok, exp: now() - 60 }, 'token expired'],
      [{ ...ok, nbf: now() + 10 }, null],
      [{ ...ok, nbf: now() + 120 }, 'token not yet valid'],
      [{ ...ok, iss: 'https://evil' }, 'invalid issuer'],
      [{ aud: 'orders' }, 'invalid issuer'],
      [{ ...ok, aud: 'other' }, 'invalid audience'],
    ]
    for (const [claims, why] of cases) {
      const tok = await new SignJWT({ sub: 'a', exp: now() + 300, ...claims }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey)
      const r = await settle(h(exchange(['authorization', `Bearer ${tok}`])))
      if (why === null) assert.equal(r, undefined, JSON.stringify(claims))
      else assert.match(rejection(r, 401, 'GH_ERR_AUTH_INVALID'), new RegExp(`error_description="${why}"`), JSON.stringify(claims))
    }
  })

  test('a bad signature is invalid_token, and of several kid-less PEM keys the right one is found', async () => {
    const h = handler({ publicKeys: [rsa2.pem, rsa.pem] })
    assert.equal(await settle(h(exchange(['authorization', `Bearer ${await sign(rsa.privateKey, 'RS256', {}, { kid: 'whatever' })}`]))), undefined)
    const other = await generateKeyPair('RS256')
    assert.match(rejection(await settle(h(exchange(['authorization', `Bearer ${await sign(other.privateKey, 'RS256')}`]))), 401, 'GH_ERR_AUTH_INVALID'), /invalid signature/)
  })

  test('required claims: a missing one or a wrong value is 403 insufficient_scope, and the verdict is cached', async () => {
    const h = handler({ publicKeys: [rsa.pem], requiredClaims: ['tenant', { name: 'roles', value: 'admin' }, { name: 'scope', value: 'orders:write' }] })
    const good = await sign(rsa.privateKey, 'RS256', { tenant: 't1', roles: ['user', 'admin'], scope: 'orders:read orders:write' })
    assert.equal(await settle(h(exchange(['authorization', `Bearer ${good}`]))), undefined)
    const noTenant = await sign(rsa.privateKey, 'RS256', { roles: ['admin'], scope: 'orders:write' })
    assert.equal(rejection(await settle(h(exchange(['authorization', `Bearer ${noTenant}`]))), 403, 'GH_ERR_AUTH_FORBIDDEN'),
      'Bearer realm="orders", error="insufficient_scope", error_description="missing required claim tenant"')
    const noScope = await sign(rsa.privateKey, 'RS256', { tenant: 't', roles: 'admin', scope: 'orders:read' })
    const r = h(exchange(['authorization', `Bearer ${noScope}`]))
    assert.equal(rejection(await settle(r), 403, 'GH_ERR_AUTH_FORBIDDEN'),
      'Bearer realm="orders", error="insufficient_scope", error_description="claim scope does not include orders:write", scope="orders:write"')
    const again = h(exchange(['authorization', `Bearer ${noScope}`]))
    assert.ok(!(again instanceof Promise))
    assert.equal((again as LocalResponse).status, 403)
  })

  test('forwardToken keeps the token, a custom consumer claim is used, and cacheSize 0 verifies every time', async () => {
    const h = handler({ publicKeys: [rsa.pem], forwardToken: true, consumerClaim: 'client_id', cacheSize: 0 })
    const tok = await sign(rsa.privateKey, 'RS256', { client_id: 'svc-7' })
    for (let i = 0; i < 2; i++) {
      const e = exchange(['authorization', `Bearer ${tok}`])
      const r = h(e)
      assert.ok(r instanceof Promise)
      assert.equal(await r, undefined)
      assert.equal(e.consumer, 'svc-7')
      assert.deepEqual(e.headers, ['authorization', `Bearer ${tok}`])
    }
  })

  test('claim values with control characters are never forwarded; non-ASCII goes as UTF-8 bytes', async () => {
    const h = handler({ publicKeys: [rsa.pem], forwardClaims: { evil: 'x-evil', name: 'x-name' } })
    const tok = await sign(rsa.privateKey, 'RS256', { evil: 'a\r\nx-admin: 1', name: 'José' })
    const e = exchange(['authorization', `Bearer ${tok}`, 'x-evil', 'client'])
    assert.equal(await settle(h(e)), undefined)
    assert.deepEqual(e.headers, ['x-name', Buffer.from('José', 'utf8').toString('latin1')])
  })
})
