import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import http from 'node:http'
import { apiYaml, catchAllConfig, freePort, gatewayFixture, rawRequest, waitFor } from '../helpers/gateway.js'

/*
 * Slow and idle clients against the real gateway (primary + 2 workers) and real sockets:
 * a stalled request body gets 408 and its upstream request is cancelled; a body that
 * keeps trickling is served even past uWS's own ~10 s socket timer; a client that stops
 * reading is dropped after sendTimeoutMs and its upstream request cancelled; a request
 * head that never completes and an idle keep-alive connection are closed by uWS's fixed
 * timer. Each close is timed from the moment the deadline started and must come within
 * the bound (the timeout plus 1 s; for uWS's timer, its 8–12 s window plus 1 s).
 */
const BODY_IDLE_MS = 1000
const SEND_MS = 1000
/** The second listener's sendTimeoutMs (a Configuration.listeners override). */
const SLOW_LISTENER_SEND_MS = 30_000
const UWS_TIMER_MAX_MS = 12_000
const GRACE_MS = 1000

interface Seen { url: string; complete: boolean; bodyBytes: number; closedAt: number; lastDrainAt: number; finished: boolean }

describe('client timeouts', () => {
  let slowPort: number
  const seen: Seen[] = []

  // Its own server, not startUpstream: it must see requests whose body never completes.
  const f = gatewayFixture(async (port, origin) => {
    slowPort = await freePort()
    return {
      'gw.yaml': catchAllConfig(port, '/', [origin], {
        host: `  timeouts: { bodyIdleTimeoutMs: ${BODY_IDLE_MS}, sendTimeoutMs: ${SEND_MS} }\n` +
          `  listeners: { "127.0.0.1:${slowPort}": { timeouts: { sendTimeoutMs: ${SLOW_LISTENER_SEND_MS} } } }\n`,
      }),
      'slow.yaml': apiYaml('slow', slowPort, '/', '    all:\n      service: s\n      routes: [{ rules: [{ path: (/.*) }] }]\n'),
    }
  }, () => http.createServer((req, res) => {
    const s: Seen = { url: req.url ?? '', complete: false, bodyBytes: 0, closedAt: 0, lastDrainAt: 0, finished: false }
    seen.push(s)
    req.on('data', (d: Buffer) => { s.bodyBytes += d.length })
    req.on('end', () => { s.complete = true })
    res.on('close', () => { s.closedAt = Date.now(); s.finished = res.writableFinished })
    if (req.url === '/big') {
      // 256 MiB in 64 KiB writes, following backpressure: far more than any socket buffer holds.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(256 * 1024 * 1024) })
      const chunk = Buffer.alloc(64 * 1024, 120)
      let left = 4096
      // The last drain is the last time the gateway took more: its client's stall starts about then.
      const pump = (): void => { s.lastDrainAt = Date.now(); while (left > 0) { left--; if (!res.write(chunk)) { res.once('drain', pump); return } } res.end() }
      pump()
      return
    }
    req.on('end', () => res.end(`got ${s.bodyBytes}`))
  }))

  /** A raw connection: what arrived, and when it closed (ms since `t0`, set by the caller). */
  function connect(to = f.port): Promise<{ sock: net.Socket; text: () => string; bytes: () => number; closed: Promise<number> }> {
    return new Promise((resolve) => {
      let text = ''
      let bytes = 0
      const sock = net.connect(to, '127.0.0.1', () => resolve({ sock, text: () => text, bytes: () => bytes, closed }))
      const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now())))
      sock.on('data', (d: Buffer) => { bytes += d.length; if (text.length < 4096) text += d.toString('latin1') })
      sock.on('error', () => {})
    })
  }

  test('a request body that stalls gets 408 GH_ERR_REQUEST_TIMEOUT within the timeout + 1 s, and the upstream request is cancelled', async () => {
    const before = seen.length
    const c = await connect()
    // Larger than limits.requestBufferBytes (64 KiB): streamed, so the upstream request is open.
    c.sock.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n0123456789')
    const stalledAt = Date.now()
    const closedAt = await c.closed
    const head = c.text().split('\r\n\r\n')[0]!
    assert.match(head, /^HTTP\/1\.1 408 /)
    assert.match(head, /content-type: application\/problem\+json/i)
    assert.equal(JSON.parse(c.text().split('\r\n\r\n')[1]!).code, 'GH_ERR_REQUEST_TIMEOUT')
    const took = closedAt - stalledAt
    assert.ok(took >= BODY_IDLE_MS - 300 && took <= BODY_IDLE_MS + GRACE_MS, `closed ${took} ms after the body stalled (timeout ${BODY_IDLE_MS} ms)`)
    // The upstream got the first bytes, then its request was cut, never completed.
    const s = await waitFor('the upstream request to be cancelled', () => seen.slice(before).find((x) => x.url === '/upload' && x.closedAt > 0))
    assert.equal(s.complete, false)
    assert.equal(s.bodyBytes, 10)
  })

  test('a body that keeps trickling is served in full, even past uWS\'s own ~10 s socket timer', async () => {
    const before = seen.length
    const c = await connect()
    const BYTES = 33 // one every 400 ms: ~13 s in all, each gap well within the 1 s idle timeout
    c.sock.write(`POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: ${BYTES}\r\nConnection: close\r\n\r\n`)
    for (let i = 0; i < BYTES; i++) {
      await new Promise((r) => setTimeout(r, 400))
      assert.equal(c.sock.destroyed, false, `connection closed after ${i} bytes: ${c.text()}`)
      c.sock.write('x')
    }
    await c.closed
    assert.match(c.text(), /^HTTP\/1\.1 200 /)
    assert.ok(c.text().endsWith(`got ${BYTES}`), c.text())
    const s = seen.slice(before).find((x) => x.url === '/trickle')!
    assert.equal(s.complete, true)
  })

  test('a client that stops reading is dropped within sendTimeoutMs + 1 s, and the upstream response is cancelled', async () => {
    const before = seen.length
    const c = await connect()
    c.sock.pause() // reads nothing: the socket buffers fill within milliseconds
    c.sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
    const s = await waitFor('the upstream to stop', () => seen.slice(before).find((x) => x.url === '/big' && x.closedAt > 0), 20_000)
    assert.equal(s.finished, false, 'the upstream response was cut, not completed')
    // From the gateway's last read of the upstream (its client's last progress) to the cancellation.
    const took = s.closedAt - s.lastDrainAt
    assert.ok(took >= SEND_MS - 300 && took <= SEND_MS + GRACE_MS, `upstream cancelled ${took} ms after the gateway's last read (timeout ${SEND_MS} ms)`)
    // The client, reading again, gets what was buffered and then the close: never the whole body.
    c.sock.resume()
    await c.closed
    assert.ok(c.bytes() < 256 * 1024 * 1024, `client got ${c.bytes()} bytes`)
  })

  test('a client that reads slowly but steadily keeps being served past uWS\'s own ~10 s socket timer (on a listener whose sendTimeoutMs is overridden)', async () => {
    const before = seen.length
    const c = await connect(slowPort)
    c.sock.pause()
    c.sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
    const up = await waitFor('the upstream response', () => seen.slice(before).find((x) => x.url === '/big'))
    // 16 KiB every 166 ms (~97 KiB/s): progress within this listener's 30 s send timeout (the
    // default listener's 1 s would drop it: with megabytes of client socket buffer, TCP window
    // updates reach the gateway in bursts seconds apart), but slower than what re-arms uWS's
    // timer by itself, which used to cut such a client after ~11.8 s.
    // The client's own socket buffer holds megabytes, so the cut shows first upstream: the
    // gateway cancels the upstream response when it drops the client.
    let got = 0
    const startedAt = Date.now()
    while (Date.now() - startedAt < 14_000) {
      await new Promise((r) => setTimeout(r, 166))
      assert.equal(up.closedAt, 0, `the gateway dropped the client ${up.closedAt - startedAt} ms after the request (read ${got} bytes)`)
      const d = c.sock.read(16 * 1024) as Buffer | null
      if (d !== null) got += d.length
    }
    assert.ok(got > 1024 * 1024, `read ${got} bytes`)
    c.sock.destroy()
  })

  test('a request head that never completes, and an idle keep-alive connection, are closed by uWS\'s timer with no response', async () => {
    const partial = await connect()
    partial.sock.write('GET / HTTP/1.1\r\nHost: x\r\n') // no blank line: the head never ends
    const partialAt = Date.now()
    const idle = await connect()
    idle.sock.write('GET /ka HTTP/1.1\r\nHost: x\r\n\r\n')
    await waitFor('the keep-alive response', () => idle.text().includes('\r\n\r\ngot 0'))
    const idleAt = Date.now()
    const [partialClosed, idleClosed] = await Promise.all([partial.closed, idle.closed])
    assert.equal(partial.text(), '', 'nothing is sent for an incomplete head')
    assert.ok(partialClosed - partialAt <= UWS_TIMER_MAX_MS + GRACE_MS, `head timeout after ${partialClosed - partialAt} ms`)
    assert.ok(idleClosed - idleAt <= UWS_TIMER_MAX_MS + GRACE_MS, `keep-alive idle close after ${idleClosed - idleAt} ms`)
    assert.equal(idle.text().split('HTTP/1.1 ').length - 1, 1, 'exactly one response on the idle connection')
  })
})

describe('slow uploads and upstream connections', () => {
  const bodies: number[] = []
  // One upstream connection per worker: a streamed slow upload would take it for its whole body.
  const f = gatewayFixture((port, origin) => ({ 'gw.yaml': catchAllConfig(port, '/', [origin], { service: '  connectionsPerEndpoint: 1\n' }) }),
    () => http.createServer((req, res) => {
      let n = 0
      req.on('data', (d: Buffer) => { n += d.length })
      req.on('end', () => { if (req.method === 'POST') bodies.push(n); res.end(`got ${n}`) })
    }))

  test('small bodies are read whole before the upstream request: slow uploads hold no upstream connection, other requests are served meanwhile', async () => {
    const slow: net.Socket[] = []
    for (let i = 0; i < 4; i++) {
      const s = net.connect(f.port, '127.0.0.1')
      s.on('error', () => {})
      await new Promise((r) => s.once('connect', r))
      s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nConnection: close\r\n\r\n0123456789')
      slow.push(s)
    }
    const replies = slow.map((s) => new Promise<string>((r) => { let t = ''; s.on('data', (d: Buffer) => { t += d.toString('latin1') }); s.on('close', () => r(t)) }))
    await new Promise((r) => setTimeout(r, 300))
    for (let i = 0; i < 4; i++) {
      const r = await rawRequest(f.port, 'GET /quick HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)
      assert.match(r.text, /^HTTP\/1\.1 200 /, `GET ${i} while 4 uploads are pending: ${r.text.slice(0, 60) || '(no response)'}`)
    }
    assert.deepEqual(bodies, [], 'no upload reached the upstream before its body was complete')
    for (const s of slow) s.write('x'.repeat(40))
    const texts = await Promise.all(replies)
    for (const t of texts) assert.match(t, /^HTTP\/1\.1 200 [\s\S]*got 50$/)
    assert.deepEqual(bodies, [50, 50, 50, 50])
  })
})
