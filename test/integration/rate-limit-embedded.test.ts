import { after, before, describe, test } from 'node:test'
import { createHash } from 'node:crypto'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { loadConfigDir, formatConfigError } from '../../src/config/load.js'
import { catchAllConfig, freePort, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/* Without Redis: the primary's embedded store makes one exact limit for all workers of the host. */

describe('rate limiting with the embedded store (no Redis)', () => {
  let gw: Gateway
  let up: Upstream
  let port: number

  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': catchAllConfig(port, '/e', [up.origin], {
        api: `  policies:
    - policyRef: { name: rate-limit }
      # maxWaitMs: this test is about exact sharing; on a loaded 2-core machine a 20 ms stall
      # would hand the decision to the per-worker fallback, which is not what it checks.
      config: { rateLimits: [{ maximumRequests: 20, timePeriodInMilliseconds: 3600000 }], maxWaitMs: 1000 }
      rules: [{ path: /shared }]
    - policyRef: { name: rate-limit }
      config:
        rateLimits: [{ maximumRequests: 2, timePeriodInMilliseconds: 3600000 }, { maximumRequests: 5, timePeriodInMilliseconds: 7200000 }]
        keySelector: { header: x-user, query: tenant }
        maxWaitMs: 1000
      rules: [{ path: /multi }]
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 1, timePeriodInMilliseconds: 3600000 }], exposeHeaders: false, keySelector: { header: x-user }, maxWaitMs: 1000 }
      rules: [{ path: /quiet }]
`,
      }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  async function get(path: string, headers: Record<string, string> = {}) {
    // A new connection per request: the kernel spreads them over both workers.
    const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close', ...headers } })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text }
  }

  test('two workers share one exact limit: 60 requests over new connections admit exactly 20', async () => {
    const before = (await gw.status()) as unknown as { workers: Array<{ pid: number }> }
    const res = await Promise.all(Array.from({ length: 60 }, () => get('/e/shared')))
    assert.equal(res.filter((r) => r.status === 200).length, 20)
    assert.equal(res.filter((r) => r.status === 429).length, 40)
    // Both workers took part (their heartbeat counters say so), so the limit really was shared.
    await new Promise((r) => setTimeout(r, 600))
    const st = (await gw.status()) as unknown as { workers: Array<{ pid: number; rateLimit: { admitted: number; limited: number } }> }
    assert.equal(st.workers.length, before.workers.length)
    for (const w of st.workers) assert.ok(w.rateLimit.admitted + w.rateLimit.limited > 0, `worker ${w.pid} served none of them`)
    for (const w of st.workers) assert.equal((w.rateLimit as { fallbacks?: number }).fallbacks ?? 0, 0, 'every decision came from the embedded store')
  })

  test('responses carry RateLimit-* headers and a 429 carries Retry-After and problem+json', async () => {
    const ok = await get('/e/multi', { 'x-user': 'h1' })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers['ratelimit-limit'], '2')
    assert.equal(ok.headers['ratelimit-remaining'], '1')
    assert.equal(ok.headers['ratelimit-policy'], '2;w=3600, 5;w=7200')
    const reset = Number(ok.headers['ratelimit-reset'])
    assert.ok(reset > 0 && reset <= 3600, `reset ${reset}`)
    await get('/e/multi', { 'x-user': 'h1' })
    const no = await get('/e/multi', { 'x-user': 'h1' })
    assert.equal(no.status, 429)
    assert.equal(no.headers['content-type'], 'application/problem+json')
    assert.equal(no.headers['ratelimit-remaining'], '0')
    assert.equal(no.headers['retry-after'], no.headers['ratelimit-reset'])
    const body = JSON.parse(no.text) as { code: string; status: number; detail?: string }
    assert.equal(body.code, 'GH_ERR_RATE_LIMITED')
    assert.equal(body.status, 429)
    assert.equal(body.detail, undefined, 'no fallback was involved')
  })

  test('the key combines every selector part: another tenant is counted apart', async () => {
    const a = await get('/e/multi?tenant=a', { 'x-user': 'h2' })
    const b = await get('/e/multi?tenant=b', { 'x-user': 'h2' })
    const a2 = await get('/e/multi?tenant=a', { 'x-user': 'h2' })
    const a3 = await get('/e/multi?tenant=a', { 'x-user': 'h2' })
    assert.deepEqual([a.status, b.status, a2.status, a3.status], [200, 200, 200, 429])
  })

  test('every window must allow: the longer window limits once the shorter ones are used across keys', async () => {
    // 2 per hour and 5 per two hours for the same key: the third request is refused by the first window.
    const res = []
    for (let i = 0; i < 3; i++) res.push((await get('/e/multi?tenant=w', { 'x-user': 'h3' })).status)
    assert.deepEqual(res, [200, 200, 429])
  })

  test('exposeHeaders: false sends no RateLimit headers, also on 429', async () => {
    const ok = await get('/e/quiet', { 'x-user': 'q' })
    const no = await get('/e/quiet', { 'x-user': 'q' })
    assert.equal(ok.status, 200)
    assert.equal(no.status, 429)
    for (const r of [ok, no]) {
      assert.equal(r.headers['ratelimit-limit'], undefined)
      assert.equal(r.headers['retry-after'], undefined)
    }
  })
})

describe('rate-limit config errors', () => {
  async function errorsOf(config: string): Promise<string[]> {
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': `apiVersion: gatehouse/v1
kind: ApiInstance
metadata: { name: a }
spec:
  address: http://127.0.0.1:18099/a
  services:
    v1: { address: http://127.0.0.1:18098, routes: [{}] }
  policies:
    - policyRef: { name: rate-limit }
      config: ${config}
`,
    })
    const r = await loadConfigDir(dir)
    assert.equal(r.ok, false)
    return r.ok ? [] : r.errors.map((e) => formatConfigError(e).slice(dir.length + 1))
  }

  test('rateLimits is required and must not be empty', async () => {
    assert.deepEqual(await errorsOf('{ rateLimits: [] }'), ['a.yaml:10:29: spec.policies[0].config.rateLimits: must not be empty'])
  })

  test('a window needs a positive maximumRequests', async () => {
    assert.deepEqual(await errorsOf('{ rateLimits: [{ maximumRequests: 0, timePeriodInMilliseconds: 1000 }] }'),
      ['a.yaml:10:49: spec.policies[0].config.rateLimits[0].maximumRequests: must be >= 1'])
  })

  test('onStoreFailure accepts only local, allow or deny', async () => {
    const errs = await errorsOf('{ rateLimits: [{ maximumRequests: 1, timePeriodInMilliseconds: 1000 }], onStoreFailure: open }')
    assert.equal(errs.length, 1)
    assert.match(errs[0]!, /^a\.yaml:10:\d+: spec\.policies\[0\]\.config\.onStoreFailure: /)
  })

  test('an unknown keySelector part is an error', async () => {
    const errs = await errorsOf('{ rateLimits: [{ maximumRequests: 1, timePeriodInMilliseconds: 1000 }], keySelector: { cookie: sid } }')
    assert.equal(errs.length, 1)
    assert.match(errs[0]!, /spec\.policies\[0\]\.config\.keySelector\.cookie: unknown field/)
  })
})

describe('rate limiting per consumer named by the api-key policy', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  const hex = (k: string): string => createHash('sha256').update(k).digest('hex')

  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': catchAllConfig(port, '/k', [up.origin], {
        api: `  policies:
    - policyRef: { name: api-key }
      config:
        keys: [{ name: alice, keyHash: "sha256:${hex('key-a1')}" }, { name: alice, keyHash: "sha256:${hex('key-a2')}" }, { name: bob, keyHash: "sha256:${hex('key-b')}" }]
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 2, timePeriodInMilliseconds: 3600000 }], keySelector: { consumer: true }, maxWaitMs: 1000 }
`,
      }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  async function status(key: string): Promise<number> {
    const r = await request(`http://127.0.0.1:${port}/k/x`, { headers: { 'x-api-key': key } })
    await r.body.text()
    return r.statusCode
  }

  test('the limit follows the consumer: both of alice\'s keys share one budget, bob has his own', async () => {
    assert.deepEqual([await status('key-a1'), await status('key-a2'), await status('key-a1')], [200, 200, 429])
    assert.deepEqual([await status('key-b'), await status('key-b'), await status('key-b')], [200, 200, 429])
    assert.equal(await status('wrong'), 401, 'authentication runs first (order 25 before 40)')
  })
})
