/**
 * White-box: the JWKS cache against a real node:http JWKS endpoint on 127.0.0.1, with a
 * fake clock for the TTL and the refetch rate: shared fetches, rotation, rate-bounded
 * refetches on unknown kids, stale keys while the IdP is down, 503 with nothing cached.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import { JwksCache, JwksUnavailable } from '../../../../src/worker/policies/jwt-validation/jwks.js'

let server: http.Server
let url: string
let keys: JWK[] = []
let hits = 0
let mode: 'ok' | 'down' | 'garbage' = 'ok'
let delayMs = 0

before(async () => {
  server = http.createServer((req, res) => {
    hits++
    if (mode === 'down') { req.socket.destroy(); return }
    const body = mode === 'garbage' ? '{"keys": "nope"}' : JSON.stringify({ keys })
    setTimeout(() => res.end(body), delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

async function rsaJwk(kid: string): Promise<JWK> {
  const { publicKey } = await generateKeyPair('RS256', { extractable: true })
  return { ...await exportJWK(publicKey), kid, alg: 'RS256', use: 'sig' }
}

function cache(clock: { t: number }, over: { ttlMs?: number; minRefetchIntervalMs?: number } = {}): { c: JwksCache; errors: Error[] } {
  const errors: Error[] = []
  const c = new JwksCache(url, {
    ttlMs: over.ttlMs ?? 60_000, minRefetchIntervalMs: over.minRefetchIntervalMs ?? 30_000, timeoutMs: 1000,
    extraKeys: [], onError: (e) => errors.push(e), now: () => clock.t,
  })
  return { c, errors }
}

async function kidsOf(set: unknown): Promise<string[]> {
  return ((set as { jwks(): { keys: JWK[] } }).jwks().keys).map((k) => k.kid!)
}

describe('JWKS cache', () => {
  test('concurrent first uses share one fetch', async () => {
    keys = [await rsaJwk('k1')]
    mode = 'ok'; delayMs = 50; hits = 0
    const { c } = cache({ t: 1_000_000 })
    const sets = await Promise.all(Array.from({ length: 20 }, () => c.keysFor('k1')))
    delayMs = 0
    assert.equal(hits, 1)
    assert.equal(c.fetches, 1)
    assert.ok(sets.every((s) => s === sets[0]))
  })

  test('a new kid is picked up by a refetch, and unknown kids refetch at most once per interval', async () => {
    keys = [await rsaJwk('k1')]
    mode = 'ok'; hits = 0
    const clock = { t: 1_000_000 }
    const { c } = cache(clock, { minRefetchIntervalMs: 30_000 })
    await c.keysFor('k1')
    keys = [...keys, await rsaJwk('k2')]
    clock.t += 1000
    assert.deepEqual(await kidsOf(await c.keysFor('k2')), ['k1'], 'within the interval: no refetch, the old set is used')
    assert.equal(hits, 1)
    clock.t += 30_000
    assert.deepEqual(await kidsOf(await c.keysFor('k2')), ['k1', 'k2'], 'past the interval: one refetch finds k2')
    assert.equal(hits, 2)
    for (let i = 0; i < 50; i++) await c.keysFor(`unknown-${i}`)
    assert.equal(hits, 2, 'a flood of unknown kids right after a fetch sends nothing')
    clock.t += 30_000
    await Promise.all(Array.from({ length: 50 }, (_, i) => c.keysFor(`other-${i}`)))
    assert.equal(hits, 3, 'the next interval allows exactly one more')
  })

  test('stale keys are served while the IdP is down, with one refresh attempt per interval', async () => {
    keys = [await rsaJwk('k1')]
    mode = 'ok'; hits = 0
    const clock = { t: 1_000_000 }
    const { c, errors } = cache(clock, { ttlMs: 10_000, minRefetchIntervalMs: 5000 })
    const first = await c.keysFor('k1')
    mode = 'down'
    clock.t += 20_000
    assert.equal(await c.keysFor('k1'), first, 'stale keys answer at once')
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(hits, 2, 'and a refresh was tried in the background')
    assert.equal(errors.length, 1)
    for (let i = 0; i < 10; i++) assert.equal(await c.keysFor('k1'), first)
    assert.equal(hits, 2)
    await assert.rejects(c.keysFor('k9'), JwksUnavailable, 'an unknown kid while the IdP is known to be down is a 503, not a 401')
    mode = 'ok'
    keys = [await rsaJwk('k2')]
    clock.t += 5000
    await c.keysFor('k1')
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(await kidsOf(await c.keysFor('k2')), ['k2'], 'the IdP back: the refresh replaces the set')
  })

  test('with nothing cached and the IdP down, callers get JwksUnavailable, fast until the interval allows a retry', async () => {
    mode = 'down'; hits = 0
    const clock = { t: 1_000_000 }
    const { c } = cache(clock, { minRefetchIntervalMs: 2000 })
    await assert.rejects(c.keysFor('k1'), JwksUnavailable)
    await assert.rejects(c.keysFor('k1'), JwksUnavailable)
    assert.equal(hits, 1)
    mode = 'ok'
    keys = [await rsaJwk('k1')]
    clock.t += 2000
    assert.deepEqual(await kidsOf(await c.keysFor('k1')), ['k1'])
    assert.equal(hits, 2)
  })

  test('a malformed JWKS document keeps the keys already held', async () => {
    keys = [await rsaJwk('k1')]
    mode = 'ok'
    const clock = { t: 1_000_000 }
    const { c, errors } = cache(clock, { minRefetchIntervalMs: 0 })
    await c.keysFor('k1')
    mode = 'garbage'
    await assert.rejects(c.keysFor('k2'), JwksUnavailable)
    assert.deepEqual(await kidsOf(await c.keysFor('k1')), ['k1'])
    assert.match(errors[0]!.message, /no "keys" list/)
    mode = 'ok'
  })
})
