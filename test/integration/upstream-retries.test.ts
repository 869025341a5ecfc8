/**
 * Retries and cancellation: only an idempotent, body-less request that was never written
 * goes to another endpoint; a client that leaves cancels its upstream request, and that is
 * not held against the endpoint.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { apiYaml, freePort, hostYaml, serviceYaml, sleep, startGateway, startUpstream, tempDir, waitFor, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

interface Reply { status: number; code: string | null }

/** One request on its own connection (so requests spread over both workers). */
function once(port: number, path: string, method = 'GET', body: string | null = null): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body === null ? {} : { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        const code = res.headers['content-type'] === 'application/problem+json' ? (JSON.parse(text) as { code: string }).code : null
        resolve({ status: res.statusCode!, code })
      })
      res.on('error', reject)
    })
    req.setTimeout(15_000, () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
    req.end(body ?? undefined)
  })
}

/** An upstream that reads each request completely, counts it, then resets the connection. */
async function resetAfterRead(): Promise<{ origin: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`)
      res.socket?.resetAndDestroy()
    })
  })
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)))
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}

const count = (rs: Reply[], status: number): number => rs.filter((r) => r.status === status).length

describe('retries on another endpoint', () => {
  let gw: Gateway
  let port: number
  let good: Upstream
  let goodPost: Upstream
  let goodPostRefused: Upstream
  let resetter: Awaited<ReturnType<typeof resetAfterRead>>

  before(async () => {
    good = await startUpstream()
    goodPost = await startUpstream()
    goodPostRefused = await startUpstream()
    resetter = await resetAfterRead()
    const refused1 = `http://127.0.0.1:${await freePort()}`
    const refused2 = `http://127.0.0.1:${await freePort()}`
    port = await freePort()
    // Passive ejection off: every request keeps meeting the failing endpoint.
    const opts = '  loadBalancing: round-robin\n  retries: 1\n  healthChecks: { passive: { consecutiveFailures: 0 } }\n'
    const dir = tempDir()
    writeConfig(dir, {
      'all.yaml': [
        apiYaml('retries', port, '/r', `    get:
      service: svc-get
      routes: [{ rules: [{ path: /get(/.*) }] }]
    post:
      service: svc-post
      routes: [{ rules: [{ path: /post(/.*) }] }]
    post-refused:
      service: svc-post-refused
      routes: [{ rules: [{ path: /post-refused(/.*) }] }]
`),
        serviceYaml('svc-get', [refused1, good.origin], opts),
        serviceYaml('svc-post', [resetter.origin, goodPost.origin], opts),
        serviceYaml('svc-post-refused', [refused2, goodPostRefused.origin], opts),
        hostYaml(),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([good?.close(), goodPost?.close(), goodPostRefused?.close(), resetter?.close()])
  })

  test('a GET whose endpoint refuses is retried on another endpoint and succeeds', async () => {
    const replies: Reply[] = []
    for (let i = 0; i < 20; i++) replies.push(await once(port, '/r/get/x'))
    // Round robin offers the refusing endpoint first for about half of these.
    assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200))
    assert.equal(good.requests.length, 20, 'each request reached the good endpoint exactly once')
  })

  test('a POST that reached an upstream which then reset is a 502 and is never sent twice', async () => {
    const replies: Reply[] = []
    for (let i = 0; i < 8; i++) replies.push(await once(port, '/r/post/x', 'POST', `payload-${i}`))
    const failed = replies.filter((r) => r.status === 502)
    for (const r of failed) assert.equal(r.code, 'GH_ERR_UPSTREAM_RESET')
    assert.equal(failed.length + count(replies, 200), 8)
    assert.ok(failed.length >= 1, 'round robin sent some POSTs to the resetting endpoint')
    assert.equal(resetter.requests.length, failed.length, 'the resetting upstream saw each failed POST exactly once')
    assert.equal(goodPost.requests.length, count(replies, 200), 'no failed POST was replayed on the other endpoint')
    assert.equal(resetter.requests.length + goodPost.requests.length, 8)
  })

  test('a POST to a refusing endpoint is not retried', async () => {
    const replies: Reply[] = []
    for (let i = 0; i < 8; i++) replies.push(await once(port, '/r/post-refused/x', 'POST', `payload-${i}`))
    const failed = replies.filter((r) => r.status === 502)
    for (const r of failed) assert.equal(r.code, 'GH_ERR_UPSTREAM_REFUSED')
    assert.ok(failed.length >= 1, 'round robin sent some POSTs to the refusing endpoint')
    assert.equal(failed.length + count(replies, 200), 8)
    assert.equal(goodPostRefused.requests.length, count(replies, 200), 'only the POSTs answered 200 reached the other endpoint')
  })
})

describe('a client that leaves cancels its upstream request', () => {
  let gw: Gateway
  let port: number
  let server: http.Server
  let slowStarted = 0
  let closedUnanswered = 0
  let fastHits = 0

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/fast') { fastHits++; res.end('ok'); return }
      slowStarted++
      let answered = false
      const t = setTimeout(() => { answered = true; res.end('late') }, 5000)
      res.on('close', () => { clearTimeout(t); if (!answered) closedUnanswered++ })
    })
    const upPort = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)))
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'all.yaml': [
        apiYaml('abort', port, '/c', `    all:
      service: svc-abort
      routes: [{ rules: [{ path: /.* }] }]
`),
        // One failure would eject the only endpoint: a client abort counted as one would show as a 503.
        serviceYaml('svc-abort', [`http://127.0.0.1:${upPort}`],
          '  timeouts: { responseMs: 10000 }\n  healthChecks: { passive: { consecutiveFailures: 1, baseEjectionMs: 60000 } }\n'),
        hostYaml(),
      ].join('---\n'),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  test('the upstream sees its request closed before it answered when the client disconnects', async () => {
    const n = 4
    for (let i = 0; i < n; i++) {
      const s = net.connect(port, '127.0.0.1')
      s.on('error', () => {})
      s.write('GET /c/slow HTTP/1.1\r\nhost: a\r\n\r\n')
      await sleep(200)
      s.destroy()
    }
    await waitFor('the upstream to see every request closed', () => closedUnanswered === n, 10_000)
    assert.equal(slowStarted, n)
  })

  test('a client abort does not count as an upstream failure', async () => {
    // Four aborts went to this single endpoint with consecutiveFailures 1; it must still serve.
    for (let i = 0; i < 10; i++) {
      const r = await once(port, '/c/fast')
      assert.equal(r.status, 200, `request ${i}: ${r.code ?? ''}`)
    }
    assert.equal(fastHits, 10)
  })
})
