/**
 * Upstream failures as the client sees them: every undici/socket failure becomes one coded
 * problem+json (502/504), or, once the response head went out, a closed connection with an
 * incomplete body, never a clean short response.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { apiYaml, freePort, hostYaml, rawRequest, serviceYaml, startGateway, statusOf, startUpstream, tempDir, waitFor, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

/**
 * One request on its own connection (so requests spread over both workers). With
 * `giveUpMs` the client leaves after that long and the reply has status 0.
 */
function once(port: number, path: string, method = 'GET', giveUpMs = 0): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    if (giveUpMs > 0) {
      req.setTimeout(giveUpMs, () => { req.destroy(); resolve({ status: 0, headers: {}, body: '' }) })
      req.on('error', () => resolve({ status: 0, headers: {}, body: '' }))
    } else {
      req.setTimeout(15_000, () => req.destroy(new Error('client timeout')))
      req.on('error', reject)
    }
    req.end()
  })
}

/** A raw TCP upstream: `onRequest` gets the socket once a request head has arrived. */
async function rawUpstream(onRequest: (s: net.Socket) => void): Promise<{ port: number; hits: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  let hits = 0
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    let head = ''
    s.on('data', (c) => {
      if (head.includes('\r\n\r\n')) return
      head += c.toString('latin1')
      if (head.includes('\r\n\r\n')) { hits++; onRequest(s) }
    })
  })
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)))
  return {
    port,
    hits: () => hits,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()) }),
  }
}

/**
 * A listening socket that never accepts: a child process listens with backlog 1 and then
 * blocks its event loop, so the kernel's accept queue fills and further SYNs are dropped
 * (Linux drops a SYN when the accept queue is full). Node cannot listen without accepting
 * in-process, hence the child.
 */
async function blackHole(): Promise<{ port: number; proc: ChildProcess; fillers: net.Socket[] }> {
  const script = `
    const net = require('node:net')
    const s = net.createServer()
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n', () => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300000) // bounded: 5 min
      })
    })`
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  const port = await waitFor('black hole port', () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined), 10_000)
  // Fill the accept queue (backlog 1 holds up to 2 on Linux); later SYNs go unanswered.
  const fillers: net.Socket[] = []
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    fillers.push(s)
  }
  await new Promise((r) => setTimeout(r, 200))
  return { port, proc, fillers }
}

/** Whether a connect to `port` is still pending after `ms` (i.e. SYNs are being dropped). */
function connectHangs(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const t = setTimeout(() => { s.destroy(); resolve(true) }, ms)
    s.on('connect', () => { clearTimeout(t); s.destroy(); resolve(false) })
    s.on('error', () => { clearTimeout(t); resolve(false) })
  })
}

function split(raw: string): { head: string; body: string } {
  const i = raw.indexOf('\r\n\r\n')
  return i < 0 ? { head: raw, body: '' } : { head: raw.slice(0, i), body: raw.slice(i + 4) }
}

const NO_EJECTION = '  healthChecks: { passive: { consecutiveFailures: 0 } }\n'

describe('upstream failures become coded problems or closed connections', () => {
  let gw: Gateway
  let port: number
  let hole: Awaited<ReturnType<typeof blackHole>> | null = null
  let holeWorks = false
  const servers: Array<{ close(): Promise<void> }> = []
  let hang: Awaited<ReturnType<typeof rawUpstream>>
  let resetBefore: Awaited<ReturnType<typeof rawUpstream>>
  let good: Upstream

  before(async () => {
    const refusedPort = await freePort()
    hang = await rawUpstream(() => { /* accepts, reads, never answers */ })
    resetBefore = await rawUpstream((s) => { s.resetAndDestroy() })
    const partialCl = await rawUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n' + 'a'.repeat(100))
      setTimeout(() => s.resetAndDestroy(), 100)
    })
    const partialChunked = await rawUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n64\r\n' + 'b'.repeat(100) + '\r\n')
      setTimeout(() => s.resetAndDestroy(), 100)
    })
    const garbage = await rawUpstream((s) => { s.end('SSH-2.0-OpenSSH_9.6\r\n') })
    const hugeHead = await rawUpstream((s) => {
      s.end(`HTTP/1.1 200 OK\r\nx-big: ${'h'.repeat(64 * 1024)}\r\ncontent-length: 0\r\n\r\n`)
    })
    servers.push(hang, resetBefore, partialCl, partialChunked, garbage, hugeHead)
    hole = await blackHole()
    holeWorks = await connectHangs(hole.port, 500)
    port = await freePort()
    const route = (name: string): string => `    ${name}:
      service: svc-${name}
      routes: [{ rules: [{ path: /${name}(/.*) }] }]
`
    const names = ['refused', 'hang', 'blackhole', 'reset-before', 'partial-cl', 'partial-chunked', 'garbage', 'huge-head']
    const ports = [refusedPort, hang.port, hole.port, resetBefore.port, partialCl.port, partialChunked.port, garbage.port, hugeHead.port]
    const docs = [apiYaml('errs', port, '/e', [...names, 'impatient'].map(route).join('')), hostYaml()]
    names.forEach((n, i) => {
      docs.push(serviceYaml(`svc-${n}`, [`http://127.0.0.1:${ports[i]}`],
        `  timeouts: { connectMs: 300, responseMs: 500 }\n  retries: 0\n${NO_EJECTION}`))
    })
    // Clients give up long before the connect timeout here; the endpoint must still be ejected.
    good = await startUpstream()
    servers.push(good)
    docs.push(serviceYaml('svc-impatient', [`http://127.0.0.1:${hole.port}`, good.origin],
      '  timeouts: { connectMs: 1000 }\n  retries: 0\n  healthChecks: { passive: { consecutiveFailures: 1, baseEjectionMs: 60000 } }\n'))
    const dir = tempDir()
    writeConfig(dir, { 'all.yaml': docs.join('---\n') })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    for (const s of hole?.fillers ?? []) s.destroy()
    if (hole !== null && hole.proc.exitCode === null) hole.proc.kill('SIGKILL')
    await Promise.all(servers.map((s) => s.close()))
  })

  test('a refused connection is a 502 problem with GH_ERR_UPSTREAM_REFUSED', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await once(port, '/e/refused/x')
      assert.equal(r.status, 502)
      assert.equal(r.headers['content-type'], 'application/problem+json')
      const p = JSON.parse(r.body) as { code: string; status: number }
      assert.equal(p.code, 'GH_ERR_UPSTREAM_REFUSED')
      assert.equal(p.status, 502)
    }
  })

  test('an upstream that accepts and never answers is a 504 with GH_ERR_UPSTREAM_TIMEOUT', async () => {
    const r = await once(port, '/e/hang/x')
    assert.equal(r.status, 504)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_UPSTREAM_TIMEOUT')
    assert.ok(hang.hits() >= 1, 'the request reached the upstream')
  })

  test('a connect that never completes is a 504 with GH_ERR_UPSTREAM_CONNECT_TIMEOUT', async (t) => {
    if (!holeWorks) { t.skip('this kernel answers SYNs on a full accept queue; no connect timeout on loopback'); return }
    const r = await once(port, '/e/blackhole/x')
    assert.equal(r.status, 504)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT')
  })

  test('a connect timeout counts against the endpoint even when every client gave up before it', async (t) => {
    if (!holeWorks) { t.skip('no connect timeout on loopback here'); return }
    // Round robin offers the black hole to every other request of each worker; clients leave
    // after 300 ms, the gateway's connect times out after 1000 ms and must eject it anyway.
    let rounds = 0
    await waitFor('a round in which no request hangs', async () => {
      rounds++
      const replies = await Promise.all(Array.from({ length: 10 }, () => once(port, '/e/impatient/x', 'GET', 300)))
      return replies.every((r) => r.status === 200)
    }, 30_000, 200)
    assert.ok(rounds >= 1)
    const good0 = good.requests.length
    const replies = await Promise.all(Array.from({ length: 10 }, () => once(port, '/e/impatient/x')))
    assert.deepEqual(replies.map((r) => r.status), Array(10).fill(200))
    assert.equal(good.requests.length, good0 + 10)
  })

  test('an upstream that resets before answering is a 502 with GH_ERR_UPSTREAM_RESET', async () => {
    const before = resetBefore.hits()
    const r = await once(port, '/e/reset-before/x')
    assert.equal(r.status, 502)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_UPSTREAM_RESET')
    assert.equal(resetBefore.hits(), before + 1, 'a GET that was sent is not retried')
  })

  test('a reset in the middle of a Content-Length body closes the client connection with the body incomplete', async () => {
    const r = await rawRequest(port, 'GET /e/partial-cl/x HTTP/1.1\r\nhost: a\r\n\r\n', 5000)
    assert.equal(statusOf(r.text), 200, r.text.slice(0, 200))
    assert.ok(r.closed, 'the gateway closed the connection')
    const { head, body } = split(r.text)
    assert.match(head, /content-length: 1000/i)
    assert.ok(body.length < 1000, `body must be incomplete, got ${body.length} bytes`)
  })

  test('a reset in the middle of a chunked body closes the client connection without the last chunk', async () => {
    const r = await rawRequest(port, 'GET /e/partial-chunked/x HTTP/1.1\r\nhost: a\r\n\r\n', 5000)
    assert.equal(statusOf(r.text), 200, r.text.slice(0, 200))
    assert.ok(r.closed, 'the gateway closed the connection')
    const { head, body } = split(r.text)
    assert.match(head, /transfer-encoding: chunked/i)
    assert.ok(!/(^|\r\n)0\r\n\r\n$/.test(body), 'no terminating zero-length chunk')
  })

  test('an upstream that does not speak HTTP is a 502 with GH_ERR_UPSTREAM_PROTOCOL', async () => {
    const r = await once(port, '/e/garbage/x')
    assert.equal(r.status, 502)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_UPSTREAM_PROTOCOL')
  })

  test('a response head larger than the limit is a 502 with GH_ERR_UPSTREAM_PROTOCOL', async () => {
    const r = await once(port, '/e/huge-head/x')
    assert.equal(r.status, 502)
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_UPSTREAM_PROTOCOL')
  })

  test('a request path undici refuses to send is a 400, not an upstream failure', async () => {
    // U+4E2D in the path: uWS hands it over decoded, undici rejects chars above 0xff.
    const r = await rawRequest(port, Buffer.from('GET /e/refused/\u4e2d HTTP/1.1\r\nhost: a\r\n\r\n', 'utf8'), 3000)
    assert.equal(statusOf(r.text), 400, r.text.slice(0, 300))
    assert.match(r.text, /GH_ERR_REQUEST_MALFORMED/)
  })
})
