/**
 * Load balancing across endpoints. Each worker balances on its own, so requests go over
 * fresh connections (the kernel spreads those over both workers) and assertions hold for
 * the sum of two independent balancers.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/** One GET on its own connection; resolves with the status. */
function once(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode!))
      res.on('error', reject)
    })
    req.setTimeout(15_000, () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
  })
}

/** `total` requests from `concurrency` parallel loops; returns the status counts. */
async function load(port: number, path: string, total: number, concurrency: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>()
  let next = 0
  const loop = async (): Promise<void> => {
    while (next < total) {
      next++
      const s = await once(port, path)
      statuses.set(s, (statuses.get(s) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return statuses
}

function within(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= expected * tolerance,
    `${what}: ${actual} is not within ±${tolerance * 100}% of ${expected}`)
}

describe('load balancing across the endpoints of a service', () => {
  let gw: Gateway
  let port: number
  const ups: Upstream[] = []
  let rr: Upstream[]
  let w: Upstream[]
  let fast: Upstream
  let slow: Upstream

  before(async () => {
    rr = [await startUpstream(), await startUpstream(), await startUpstream()]
    w = [await startUpstream(), await startUpstream(), await startUpstream()]
    fast = await startUpstream()
    slow = await startUpstream((_req, res) => {
      setTimeout(() => { res.writeHead(200, { 'content-length': 2 }); res.end('ok') }, 300)
    })
    ups.push(...rr, ...w, fast, slow)
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'all.yaml': [
        apiYaml('lb', port, '/lb', `    rr:
      service: svc-rr
      routes: [{ rules: [{ path: /rr(/.*) }] }]
    weighted:
      service: svc-w
      routes: [{ rules: [{ path: /w(/.*) }] }]
    least:
      service: svc-lr
      routes: [{ rules: [{ path: /lr(/.*) }] }]
`),
        serviceYaml('svc-rr', rr.map((u) => u.origin), '  loadBalancing: round-robin\n'),
        serviceYaml('svc-w', [`{ url: "${w[0]!.origin}", weight: 1 }`, `{ url: "${w[1]!.origin}", weight: 2 }`,
          `{ url: "${w[2]!.origin}", weight: 5 }`], '  loadBalancing: round-robin\n'),
        serviceYaml('svc-lr', [slow.origin, fast.origin], '  loadBalancing: least-request\n'),
        hostYaml(),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all(ups.map((u) => u.close()))
  })

  test('round robin spreads 600 requests evenly over three endpoints', async () => {
    const statuses = await load(port, '/lb/rr/x', 600, 16)
    assert.deepEqual([...statuses], [[200, 600]])
    for (const [i, u] of rr.entries()) within(u.requests.length, 200, 0.1, `endpoint ${i}`)
  })

  test('weighted round robin honours the 1:2:5 weights', async () => {
    const statuses = await load(port, '/lb/w/x', 800, 16)
    assert.deepEqual([...statuses], [[200, 800]])
    within(w[0]!.requests.length, 100, 0.1, 'weight 1')
    within(w[1]!.requests.length, 200, 0.1, 'weight 2')
    within(w[2]!.requests.length, 500, 0.1, 'weight 5')
  })

  test('least-request sends clearly fewer requests to a slow endpoint under concurrency', async (t) => {
    const statuses = await load(port, '/lb/lr/x', 200, 40)
    assert.deepEqual([...statuses], [[200, 200]])
    const f = fast.requests.length
    const s = slow.requests.length
    assert.equal(f + s, 200)
    t.diagnostic(`fast ${f}, slow ${s}`)
    // Round robin would split 100/100; least-request keeps the slow one's queue short.
    assert.ok(f >= 3 * s, `fast ${f} should get at least three times slow ${s}`)
  })
})
