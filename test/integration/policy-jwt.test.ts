import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { apiYaml, freePort, hostYaml, serviceYaml, sleep, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * jwt-validation through the real gateway (2 workers, each with its own key and token
 * caches) against a real JWKS endpoint on 127.0.0.1. Requests go on fresh connections so
 * the kernel spreads them over both workers; JWKS hits are counted per path and bounded
 * by "at most one per worker" where the policy promises it.
 */

const SECRET = 'integration-hmac-secret-0123456789abcdef'
const ISS = 'https://idp.test'
const AUD = 'orders'

interface Key { kid: string; alg: string; privateKey: CryptoKey; jwk: JWK }

async function makeKey(alg: string, kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, alg, privateKey, jwk: { ...await exportJWK(publicKey), kid, alg, use: 'sig' } }
}

const now = () => Math.floor(Date.now() / 1000)

function sign(k: Key, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ iss: ISS, aud: AUD, sub: 'alice', email: 'alice@example.test', tenant: 't1', exp: now() + 300, ...claims })
    .setProtectedHeader({ alg: k.alg, kid: k.kid, ...header }).setIssuedAt().sign(k.privateKey)
}

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

describe('jwt-validation through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let idp: http.Server
  let port: number
  const jwks: Record<string, JWK[]> = { main: [], rot: [], stale: [] }
  const hits: Record<string, number> = { main: 0, rot: 0, stale: 0 }
  const down: Record<string, boolean> = { main: false, rot: false, stale: false }
  let keys: Record<string, Key>
  let pemKey: Key
  const dir = tempDir('gh-jwt-')

  before(async () => {
    keys = {
      RS256: await makeKey('RS256', 'rs-1'), PS256: await makeKey('PS256', 'ps-1'),
      ES256: await makeKey('ES256', 'es-1'), EdDSA: await makeKey('EdDSA', 'ed-1'),
    }
    jwks.main = Object.values(keys).map((k) => k.jwk)
    idp = http.createServer((req, res) => {
      const name = (req.url ?? '').slice(1)
      if (!(name in hits)) { res.writeHead(404).end(); return }
      hits[name]!++
      if (down[name]) { req.socket.destroy(); return }
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: jwks[name] }))
    })
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r))
    const idpOrigin = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`
    pemKey = await makeKey('RS256', 'pem')
    const pemFile = path.join(dir, 'public.pem')
    fs.writeFileSync(pemFile, await exportSPKI(await publicOf(pemKey)))

    up = await startUpstream()
    port = await freePort()
    const closed = await freePort()
    const api = (name: string, config: string): string => apiYaml(name, port, `/${name}`, `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: jwt-validation }
      config:
${config.trim().split('\n').map((l) => `        ${l.trim()}`).join('\n')}
`)
    const conf = [
      api('main', `
        jwksUrl: ${idpOrigin}/main
        algorithms: [RS256, PS256, ES256, EdDSA]
        issuer: ${ISS}
        audience: [billing, ${AUD}]
        requiredClaims: [tenant]
        forwardClaims: { sub: x-user, email: X-Email }`),
      api('hs', `
        algorithms: [HS256]
        secret: "\${env:GH_TEST_JWT_SECRET}"
        forwardClaims: { sub: x-user }`),
      api('rot', `
        jwksUrl: ${idpOrigin}/rot
        algorithms: [RS256]
        minRefetchIntervalMs: 2000`),
      api('stale', `
        jwksUrl: ${idpOrigin}/stale
        algorithms: [ES256]
        cacheTtlMs: 1000
        minRefetchIntervalMs: 0
        timeoutMs: 500`),
      api('down', `
        jwksUrl: http://127.0.0.1:${closed}/jwks.json
        algorithms: [RS256]
        timeoutMs: 500`),
      api('pem', `
        publicKeys: ["\${file:${pemFile}}"]
        algorithms: [RS256]
        tokenSource: { query: access_token }`),
      serviceYaml('s', [up.origin]),
      hostYaml(),
    ]
    writeConfig(dir, { 'api.yaml': conf.join('---\n') })
    gw = await startGateway(dir, { env: { GH_TEST_JWT_SECRET: SECRET } })
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (idp !== undefined) { idp.closeAllConnections(); await new Promise((r) => idp.close(r)) }
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** One request on a fresh connection (so both workers get traffic). */
  function get(p: string, token?: string, headers: Record<string, string> = {}): Promise<Reply> {
    const h = token === undefined ? headers : { authorization: `Bearer ${token}`, ...headers }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: p, headers: h, agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => { body += c })
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      })
      req.on('error', reject)
      req.end()
    })
  }

  function upstreamHeaders(r: Reply): Record<string, string> {
    assert.equal(r.status, 200, r.body)
    return (JSON.parse(r.body) as { headers: Record<string, string> }).headers
  }

  function codeOf(r: Reply): string {
    return (JSON.parse(r.body) as { code: string }).code
  }

  test('a valid token of each algorithm passes with claims forwarded as headers and the token stripped', async () => {
    for (const k of Object.values(keys)) {
      const h = upstreamHeaders(await get('/main/orders', await sign(k), { 'x-user': 'spoofed' }))
      assert.equal(h['x-user'], 'alice', k.alg)
      assert.equal(h['x-email'], 'alice@example.test', k.alg)
      assert.equal(h.authorization, undefined, `${k.alg}: the token never reaches the upstream`)
    }
    const hs = await new SignJWT({ sub: 'hs-user', exp: now() + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET))
    const h = upstreamHeaders(await get('/hs/x', hs))
    assert.equal(h['x-user'], 'hs-user')
    assert.equal(h.authorization, undefined)
  })

  test('a request without a token is 401 GH_ERR_AUTH_MISSING with a Bearer realm challenge', async () => {
    const r = await get('/main/orders')
    assert.equal(r.status, 401)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal(codeOf(r), 'GH_ERR_AUTH_MISSING')
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="main"')
  })

  test('expired, not yet valid, wrong issuer, wrong audience and a bad signature are 401 invalid_token with the reason', async () => {
    const rs = keys.RS256!
    const forger = await makeKey('RS256', 'rs-1')
    const cases: Array<[string, string]> = [
      [await sign(rs, { exp: now() - 120 }), 'token expired'],
      [await sign(rs, { nbf: now() + 120 }), 'token not yet valid'],
      [await sign(rs, { iss: 'https://evil.test' }), 'invalid issuer'],
      [await sign(rs, { aud: 'someone-else' }), 'invalid audience'],
      [await sign(forger), 'invalid signature'],
    ]
    const n = up.requests.length
    for (const [token, why] of cases) {
      const r = await get('/main/orders', token)
      assert.equal(r.status, 401, why)
      assert.equal(codeOf(r), 'GH_ERR_AUTH_INVALID', why)
      assert.equal(r.headers['www-authenticate'], `Bearer realm="main", error="invalid_token", error_description="${why}"`)
    }
    assert.equal(up.requests.length, n, 'nothing rejected reaches the upstream')
  })

  test('alg none and an HS256 token signed with the RSA public key are 401 on an RS-only config', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const none = `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: ISS, aud: AUD, sub: 'mallory', tenant: 't1', exp: now() + 60 })}.`
    const pem = await exportSPKI(await publicOf(keys.RS256!))
    const confused = await new SignJWT({ iss: ISS, aud: AUD, sub: 'mallory', tenant: 't1', exp: now() + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: 'rs-1' }).sign(new TextEncoder().encode(pem))
    for (const token of [none, confused]) {
      const r = await get('/main/orders', token)
      assert.equal(r.status, 401)
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="main", error="invalid_token", error_description="algorithm not allowed"')
    }
  })

  test('a token without a required claim is 403 GH_ERR_AUTH_FORBIDDEN with insufficient_scope', async () => {
    const r = await get('/main/orders', await sign(keys.ES256!, { tenant: undefined }))
    assert.equal(r.status, 403)
    assert.equal(codeOf(r), 'GH_ERR_AUTH_FORBIDDEN')
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="main", error="insufficient_scope", error_description="missing required claim tenant"')
  })

  test('a PEM key read through ${file:} verifies a token taken from the query, which is removed upstream', async () => {
    const token = await new SignJWT({ sub: 'q' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime(now() + 60).sign(pemKey.privateKey)
    const r = await get(`/pem/items?a=1&access_token=${token}&b=2`)
    assert.equal(r.status, 200, r.body)
    assert.equal((JSON.parse(r.body) as { url: string }).url, '/items?a=1&b=2')
  })

  test('a new kid is accepted after a refetch, and a flood of unknown kids refetches at most once per worker and interval', async () => {
    const r1 = await makeKey('RS256', 'rot-1')
    jwks.rot = [r1.jwk]
    for (let i = 0; i < 12; i++) assert.equal((await get('/rot/x', await sign(r1, { jti: `w${i}` }))).status, 200)
    assert.ok(hits.rot! >= 1 && hits.rot! <= 2, `one JWKS fetch per worker at most, got ${hits.rot}`)

    await sleep(2100) // past minRefetchIntervalMs
    const r2 = await makeKey('RS256', 'rot-2')
    jwks.rot = [r1.jwk, r2.jwk]
    const before = hits.rot!
    for (let i = 0; i < 12; i++) assert.equal((await get('/rot/x', await sign(r2, { jti: `n${i}` }))).status, 200, 'rotated key accepted')
    const afterRotation = hits.rot!
    assert.ok(afterRotation - before >= 1 && afterRotation - before <= 2, `rotation refetched once per worker, got ${afterRotation - before}`)

    const stranger = await makeKey('RS256', 'x')
    const flood = await Promise.all(Array.from({ length: 30 }, async (_, i) => get('/rot/x', await sign({ ...stranger, kid: `unknown-${i}` }))))
    for (const r of flood) {
      assert.equal(r.status, 401)
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="rot", error="invalid_token", error_description="no matching key"')
    }
    assert.ok(hits.rot! - afterRotation <= 2, `30 unknown kids caused ${hits.rot! - afterRotation} JWKS requests`)
  })

  test('keys cached before the IdP went down keep verifying new tokens after their TTL', async () => {
    const k = await makeKey('ES256', 'stale-1')
    jwks.stale = [k.jwk]
    for (let i = 0; i < 12; i++) assert.equal((await get('/stale/x', await sign(k, { jti: `a${i}` }))).status, 200)
    down.stale = true
    const before = hits.stale!
    await sleep(1100) // past cacheTtlMs: the keys are stale now
    for (let i = 0; i < 12; i++) {
      const r = await get('/stale/x', await sign(k, { jti: `b${i}` }))
      assert.equal(r.status, 200, `stale keys still verify (${r.body})`)
    }
    assert.ok(hits.stale! > before, 'refreshes were attempted in the background')
  })

  test('with the IdP down and nothing cached the answer is 503 GH_ERR_AUTH_UNAVAILABLE, never 401', async () => {
    const r = await get('/down/x', await sign(keys.RS256!))
    assert.equal(r.status, 503)
    assert.equal(codeOf(r), 'GH_ERR_AUTH_UNAVAILABLE')
    assert.equal(r.headers['www-authenticate'], undefined)
  })
})

async function publicOf(k: Key): Promise<CryptoKey> {
  return await importJWK(k.jwk, k.alg) as CryptoKey
}
