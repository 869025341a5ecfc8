/**
 * Passive ejection and active health checks. Each of the two workers keeps its own health
 * state, so every assertion is about outcomes summed over both: requests go over fresh
 * connections, which the kernel spreads over the workers.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, waitFor, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

interface Reply { status: number; code: string | null; contentType: string | undefined }

/** One GET on its own connection. */
function once(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        const ct = res.headers['content-type']
        const code = ct === 'application/problem+json' ? (JSON.parse(body) as { code: string }).code : null
        resolve({ status: res.statusCode!, code, contentType: ct })
      })
      res.on('error', reject)
    })
    req.setTimeout(15_000, () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
  })
}

async function batch(port: number, path: string, n: number): Promise<Reply[]> {
  const out: Reply[] = []
  for (let i = 0; i < n; i++) out.push(await once(port, path))
  return out
}

const dataHits = (u: Upstream): number => u.requests.filter((r) => r.url !== '/health').length

describe('passive ejection of failing endpoints', () => {
  let gw: Gateway
  let port: number
  let good: Upstream
  let bad: Upstream
  let goodR: Upstream
  let refusedPort: number
  let revived: http.Server | null = null
  let revivedHits = 0
  let badFails = true

  before(async () => {
    good = await startUpstream()
    goodR = await startUpstream()
    bad = await startUpstream((_req, res) => {
      const status = badFails ? 502 : 200
      res.writeHead(status, { 'content-length': 2 })
      res.end('xx')
    })
    refusedPort = await freePort()
    const dead1 = await freePort()
    const dead2 = await freePort()
    port = await freePort()
    const passive = (base: number): string => `  retries: 0
  healthChecks: { passive: { consecutiveFailures: 2, baseEjectionMs: ${base}, maxEjectionMs: ${base} } }
`
    const dir = tempDir()
    writeConfig(dir, {
      'all.yaml': [
        apiYaml('health', port, '/h', `    five-oh-two:
      service: svc-502
      routes: [{ rules: [{ path: /502(/.*) }] }]
    refused:
      service: svc-refused
      routes: [{ rules: [{ path: /refused(/.*) }] }]
    dead:
      service: svc-dead
      routes: [{ rules: [{ path: /dead(/.*) }] }]
`),
        serviceYaml('svc-502', [good.origin, bad.origin], passive(5000)),
        serviceYaml('svc-refused', [goodR.origin, `http://127.0.0.1:${refusedPort}`], passive(5000)),
        serviceYaml('svc-dead', [`http://127.0.0.1:${dead1}`, `http://127.0.0.1:${dead2}`],
          '  retries: 1\n  healthChecks: { passive: { consecutiveFailures: 1, baseEjectionMs: 60000 } }\n'),
        hostYaml(),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([good?.close(), bad?.close(), goodR?.close()])
    if (revived !== null) { revived.closeAllConnections(); await new Promise((r) => revived!.close(r)) }
  })

  /**
   * Sends requests until `failures` failed ones were seen (2 per worker), bounded; then
   * checks that nothing fails any more while the ejection lasts.
   */
  async function ejectOnBothWorkers(path: string, isFailure: (r: Reply) => boolean): Promise<number> {
    let failures = 0
    let sent = 0
    while (failures < 4 && sent < 200) {
      const r = await once(port, path)
      sent++
      if (isFailure(r)) failures++
      else assert.equal(r.status, 200)
    }
    assert.equal(failures, 4, `expected exactly consecutiveFailures × 2 workers failures in ${sent} requests`)
    return sent
  }

  test('an endpoint answering 502 is ejected after consecutiveFailures and comes back once healthy', async () => {
    await ejectOnBothWorkers('/h/502/x', (r) => r.status === 502)
    const badBefore = dataHits(bad)
    const after = await batch(port, '/h/502/x', 40)
    assert.deepEqual(after.map((r) => r.status), Array(40).fill(200), 'no failed request once both workers ejected it')
    assert.equal(dataHits(bad), badBefore, 'no traffic reaches the ejected endpoint')

    badFails = false
    await waitFor('the endpoint to receive traffic again', async () => {
      const r = await once(port, '/h/502/x')
      assert.equal(r.status, 200)
      return dataHits(bad) > badBefore
    }, 30_000, 100)
    const spread = await batch(port, '/h/502/x', 40)
    assert.deepEqual(spread.map((r) => r.status), Array(40).fill(200))
  })

  test('a refusing endpoint is ejected after consecutiveFailures and comes back once it listens', async () => {
    await ejectOnBothWorkers('/h/refused/x', (r) => r.status === 502 && r.code === 'GH_ERR_UPSTREAM_REFUSED')
    const after = await batch(port, '/h/refused/x', 40)
    assert.deepEqual(after.map((r) => r.status), Array(40).fill(200), 'no failed request once both workers ejected it')

    const srv = http.createServer((_req, res) => { revivedHits++; res.end('ok') })
    revived = srv
    await new Promise<void>((r) => srv.listen(refusedPort, '127.0.0.1', r))
    await waitFor('the endpoint to receive traffic again', async () => {
      const r = await once(port, '/h/refused/x')
      assert.equal(r.status, 200)
      return revivedHits > 0
    }, 30_000, 100)
  })

  test('with every endpoint ejected the gateway answers 503 GH_ERR_UPSTREAM_UNAVAILABLE', async () => {
    const replies = await batch(port, '/h/dead/x', 20)
    const refused = replies.filter((r) => r.status === 502)
    const unavailable = replies.filter((r) => r.status === 503)
    for (const r of refused) assert.equal(r.code, 'GH_ERR_UPSTREAM_REFUSED')
    for (const r of unavailable) {
      assert.equal(r.code, 'GH_ERR_UPSTREAM_UNAVAILABLE')
      assert.equal(r.contentType, 'application/problem+json')
    }
    assert.equal(refused.length + unavailable.length, 20)
    // The first request a worker gets tries both endpoints (a retry), ejecting both; every
    // later one on that worker is a 503. So at most one 502 per worker.
    assert.ok(refused.length >= 1 && refused.length <= 2, `${refused.length} refused`)
    assert.equal(replies[0]!.status, 502)
  })
})

describe('active health checks', () => {
  let gw: Gateway
  let port: number
  let a: Upstream
  let b: Upstream
  let bSick = false
  let bBadChecks = 0
  let bGoodChecks = 0
  let dir: string
  const config = (active: string): Record<string, string> => ({
    'all.yaml': [
      apiYaml('active', port, '/a', `    all:
      service: svc-active
      routes: [{ rules: [{ path: /.* }] }]
`),
      serviceYaml('svc-active', [a.origin, b.origin], `  retries: 0
  healthChecks:
    passive: { consecutiveFailures: 0 }
${active}`),
      hostYaml(),
    ].join('---\n'),
  })

  before(async () => {
    a = await startUpstream()
    b = await startUpstream((req, res) => {
      if (req.url === '/health') {
        if (bSick) bBadChecks++
        else bGoodChecks++
        res.writeHead(bSick ? 500 : 200, { 'content-length': 0 })
        res.end()
        return
      }
      res.writeHead(200, { 'content-length': 2 })
      res.end('ok')
    })
    port = await freePort()
    dir = tempDir()
    writeConfig(dir, config('    active: { path: /health, intervalMs: 250, timeoutMs: 250, healthyThreshold: 2, unhealthyThreshold: 3 }\n'))
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([a?.close(), b?.close()])
  })

  test('an endpoint whose health path fails is taken out after unhealthyThreshold checks and back after healthyThreshold', async () => {
    // Healthy at first: both endpoints serve.
    const first = await batch(port, '/a/x', 20)
    assert.deepEqual(first.map((r) => r.status), Array(20).fill(200))
    assert.ok(dataHits(b) > 0)

    bSick = true
    bBadChecks = 0
    let quiet: Reply[] = []
    await waitFor('no traffic to the failing endpoint', async () => {
      const before = dataHits(b)
      quiet = await batch(port, '/a/x', 30)
      return dataHits(b) === before
    }, 30_000, 50)
    assert.deepEqual(quiet.map((r) => r.status), Array(30).fill(200))
    // Each worker needed unhealthyThreshold failed checks of its own.
    assert.ok(bBadChecks >= 2 * 3, `${bBadChecks} failed checks before both workers gave up on it`)
    const still = dataHits(b)
    const more = await batch(port, '/a/x', 30)
    assert.deepEqual(more.map((r) => r.status), Array(30).fill(200))
    assert.equal(dataHits(b), still, 'an unhealthy endpoint gets no traffic')

    bSick = false
    bGoodChecks = 0
    await waitFor('traffic to the recovered endpoint', async () => {
      const before = dataHits(b)
      const r = await batch(port, '/a/x', 10)
      assert.deepEqual(r.map((x) => x.status), Array(10).fill(200))
      return dataHits(b) > before
    }, 30_000, 50)
    assert.ok(bGoodChecks >= 2, `${bGoodChecks} good checks before it came back`)
  })

  test('a reload that removes active checks puts an endpoint they had taken out back in service', async () => {
    bSick = true
    await waitFor('no traffic to the failing endpoint', async () => {
      const before = dataHits(b)
      await batch(port, '/a/x', 30)
      return dataHits(b) === before
    }, 30_000, 50)
    // Same endpoints and pool settings: the reload keeps the endpoints (and their state).
    writeConfig(dir, config(''))
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200, await r.text())
    await waitFor('traffic to the endpoint without checks', async () => {
      const before = dataHits(b)
      const rs = await batch(port, '/a/x', 10)
      assert.deepEqual(rs.map((x) => x.status), Array(10).fill(200))
      return dataHits(b) > before
    }, 15_000, 50)
    // And nothing probes it any more (bounded look: a few former intervals).
    const checks = b.requests.filter((x) => x.url === '/health').length
    await new Promise((res) => setTimeout(res, 1000))
    assert.equal(b.requests.filter((x) => x.url === '/health').length, checks, 'no health checks after the reload')
  })
})
