import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { request } from 'undici'
import { apiYaml, freePort, serviceYaml, sleep, startGateway, startUpstream, tempDir, waitFor, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * spike-control through the real gateway, with ONE worker (the policy is per worker).
 * Asserted: counts and order of outcomes, and lower bounds on spacing (the gateway can
 * never be faster than the rate); never upper bounds on time.
 */

function host1(): string {
  return `apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: 1
  heartbeat: { intervalMs: 250, misses: 8 }
`
}

function api(name: string, port: number, base: string, spike: string): string {
  return apiYaml(name, port, base, `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: spike-control }
      config: ${spike}
`)
}

describe('spike-control through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  /** Upstream arrivals: path and x-seq, in arrival order, with a timestamp. */
  const seen: Array<{ url: string; seq: string; at: number }> = []

  before(async () => {
    up = await startUpstream()
    up.server.on('request', (req) => { seen.push({ url: req.url!, seq: String(req.headers['x-seq'] ?? ''), at: performance.now() }) })
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': [
        // 1 per 300 ms, tried every 300 ms: a burst drains in order, one per tick.
        api('order', port, '/order', '{ maximumRequests: 10, timePeriodInMilliseconds: 3000, delayTimeInMillis: 300, delayAttempts: 10, queuingLimit: 10 }'),
        // 1 per 500 ms, 3 may wait: a burst of 6 gets 1 + 3 through and exactly 2 × 429.
        api('full', port, '/full', '{ maximumRequests: 2, timePeriodInMilliseconds: 1000, delayTimeInMillis: 500, delayAttempts: 10, queuingLimit: 3 }'),
        // 1 per second, 1 may wait: an aborted waiter must free its slot and never be forwarded.
        api('abort', port, '/abort', '{ maximumRequests: 1, timePeriodInMilliseconds: 1000, delayTimeInMillis: 200, delayAttempts: 20, queuingLimit: 1 }'),
        serviceYaml('s', [up.origin]),
        host1(),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  async function get(path: string, seq: string) {
    const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { 'x-seq': seq } })
    const text = await r.body.text()
    return { status: r.statusCode, headers: r.headers, text }
  }

  test('a burst over the rate is delayed, not refused: all succeed, forwarded in arrival order and spread out', async () => {
    const pending: Array<Promise<{ status: number }>> = []
    for (let i = 0; i < 5; i++) {
      pending.push(get('/order/x', String(i)))
      await sleep(20) // fixes the arrival order; far below the 300 ms spacing
    }
    const results = await Promise.all(pending)
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200])
    const arrivals = seen.filter((s) => s.url === '/x' && s.seq !== '' && Number(s.seq) < 5).slice(-5)
    assert.deepEqual(arrivals.map((a) => a.seq), ['0', '1', '2', '3', '4'])
    for (let i = 1; i < arrivals.length; i++) {
      assert.ok(arrivals[i]!.at - arrivals[i - 1]!.at >= 250, `gap ${i}: ${Math.round(arrivals[i]!.at - arrivals[i - 1]!.at)} ms`)
    }
  })

  test('with queuingLimit Q, a simultaneous burst of 1 + Q + k gets exactly k × 429 with Retry-After', async () => {
    const before = seen.length
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => get('/full/y', `f${i}`)))
    const ok = results.filter((r) => r.status === 200)
    const refused = results.filter((r) => r.status === 429)
    assert.equal(ok.length, 4)
    assert.equal(refused.length, 2)
    for (const r of refused) {
      assert.equal((JSON.parse(r.text) as { code: string }).code, 'GH_ERR_SPIKE_QUEUE_FULL')
      assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/)
    }
    await sleep(50)
    assert.equal(seen.length - before, 4, 'refused requests never reach the upstream')
  })

  test('a client that leaves while queued is never forwarded, and its queue slot is freed', async () => {
    const first = await get('/abort/z', 'a0')
    assert.equal(first.status, 200)
    // The second waits (the token is spent); its client then goes away.
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    await new Promise((r) => s.once('connect', r))
    s.write('GET /abort/z HTTP/1.1\r\nHost: t\r\nx-seq: a1\r\n\r\n')
    await sleep(100)
    s.destroy()
    await sleep(100)
    // queuingLimit is 1: this one may only wait because the aborted one left the queue.
    const third = await get('/abort/z', 'a2')
    assert.equal(third.status, 200, third.text)
    // Had the aborted one stayed queued it would be forwarded within ~1 s after the third.
    await sleep(1300)
    const seqs = seen.filter((x) => x.seq.startsWith('a')).map((x) => x.seq)
    assert.deepEqual(seqs, ['a0', 'a2'])
  })

  test('the gateway still answers after all of that (no stuck exchanges)', async () => {
    await waitFor('a fresh token', async () => (await get('/abort/z', 'a3')).status === 200, 5000, 200)
    const st = await gw.status()
    assert.equal(st.workers.length, 1)
  })
})
