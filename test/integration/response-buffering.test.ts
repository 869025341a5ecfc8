import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import http from 'node:http'
import { apiYaml, gatewayFixture, hostYaml, serviceYaml, waitFor, type GatewayFixture } from '../helpers/gateway.js'

/*
 * Slow readers against the real gateway (primary + 1 worker, so one pool and one cap) and
 * real sockets: a response is read ahead of a client that does not read, so the upstream
 * is done with it (limits.responseBufferBytes); and with no buffering, clients that do not
 * read may hold at most half of an endpoint's connections paused: the others are cut
 * (GH_ERR_SLOW_READER), and ordinary requests still get through.
 */
// Far more than the socket buffers on the way hold (loopback autotunes them to several MiB each).
const BIG = 64 * 1024 * 1024

/** An upstream response; blockedSince: when its last write was refused (0 while it writes). */
interface Seen { url: string; closedAt: number; finished: boolean; blockedSince: number }

function bigUpstream(seen: Seen[]): http.Server {
  return http.createServer((req, res) => {
    const s: Seen = { url: req.url ?? '', closedAt: 0, finished: false, blockedSince: 0 }
    seen.push(s)
    res.on('close', () => { s.closedAt = Date.now(); s.finished = res.writableFinished })
    req.resume()
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) })
      const chunk = Buffer.alloc(64 * 1024, 120)
      let left = BIG / chunk.length
      const pump = (): void => {
        s.blockedSince = 0
        while (left > 0) { left--; if (!res.write(chunk)) { s.blockedSince = Date.now(); res.once('drain', pump); return } }
        res.end()
      }
      pump()
      return
    }
    res.end('small')
  })
}

function config(port: number, origin: string, limits: string, service: string): Record<string, string> {
  return {
    'gw.yaml': apiYaml('api', port, '/', '    all:\n      service: s\n      routes: [{ rules: [{ path: (/.*) }] }]\n') +
      '---\n' + serviceYaml('s', [origin], service) + '---\n' + hostYaml(`  limits: ${limits}\n`, 1),
  }
}

/** A client that sends a GET and then reads nothing until `resume()`. */
function stalledGet(port: number, path: string): Promise<{ sock: net.Socket; bytes: () => number; closed: Promise<void> }> {
  return new Promise((resolve) => {
    let bytes = 0
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.pause()
      sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
      resolve({ sock, bytes: () => bytes, closed })
    })
    const closed = new Promise<void>((r) => sock.on('close', () => r()))
    sock.on('data', (d: Buffer) => { bytes += d.length })
    sock.on('error', () => {})
  })
}

/** A gateway (1 worker) in front of bigUpstream for the tests of one describe block. */
function gatewayFor(limits: string, service: string): { f: GatewayFixture; seen: Seen[] } {
  const seen: Seen[] = []
  const f = gatewayFixture((port, origin) => config(port, origin, limits, service), () => bigUpstream(seen))
  return { f, seen }
}

describe('response buffering', () => {
  const g = gatewayFor(`{ responseBufferBytes: ${2 * BIG}, responseBufferTotalBytes: ${4 * BIG} }`, '')

  test('the upstream is done with a response its client does not read, and the client still gets all of it', async () => {
    const c = await stalledGet(g.f.port, '/big')
    const s = await waitFor('the upstream to finish the response', () => g.seen.find((x) => x.url === '/big' && x.closedAt > 0), 15_000)
    assert.equal(s.finished, true, 'the upstream sent the whole response while the client read nothing')
    assert.ok(c.bytes() < BIG, `the client has read only ${c.bytes()} bytes so far`)
    c.sock.resume()
    await waitFor('the whole body', () => c.bytes() > BIG, 15_000)
    c.sock.destroy()
  })
})

describe('slow readers without response buffering', () => {
  // A pool of 2: one connection may be held for slow readers, one stays for everyone else.
  const g = gatewayFor('{ responseBufferBytes: 0 }', '  connectionsPerEndpoint: 2\n  timeouts: { responseMs: 60000 }\n')

  test('clients that do not read hold at most half the pool; the others are cut, ordinary requests get through', async () => {
    // One after the other, each once the gateway stopped reading its upstream response
    // (paused or cut): otherwise the pool would queue the next, or the order would change.
    const clients = []
    for (let i = 0; i < 3; i++) {
      clients.push(await stalledGet(g.f.port, '/big'))
      await waitFor(`the gateway to stop reading response ${i}`, () => {
        const b = g.seen.filter((x) => x.url === '/big')[i]
        return b !== undefined && (b.closedAt > 0 || (b.blockedSince > 0 && Date.now() - b.blockedSince > 500))
      }, 10_000)
    }
    // Client 0 holds the one connection allowed; 1 and 2 were cut, their upstream responses cancelled.
    const bigs = await waitFor('two cancelled upstream responses', () => {
      const b = g.seen.filter((x) => x.url === '/big')
      return b.filter((x) => x.closedAt > 0).length >= 2 ? b : undefined
    })
    assert.equal(bigs.length, 3)
    assert.deepEqual(bigs.map((x) => x.closedAt > 0 && !x.finished), [false, true, true])
    for (const c of clients.slice(1)) {
      c.sock.resume()
      await c.closed
      assert.ok(c.bytes() < BIG, `a cut client got ${c.bytes()} bytes`)
    }
    assert.equal(clients[0]!.sock.destroyed, false, 'the first slow reader is still served')

    // The free connection serves everyone else.
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://127.0.0.1:${g.f.port}/small`)
      assert.equal(r.status, 200)
      assert.equal(await r.text(), 'small')
    }

    const text = await (await fetch(`${g.f.gw.admin}/metrics`)).text()
    assert.match(text, /^gatehouse_requests_shed_total\{[^}]*reason="slow_reader"[^}]*\} 2$/m)
    assert.match(g.f.gw.output(), /GH_WRN_SLOW_READERS_CUT/)

    // The held client, reading again, gets the whole response.
    const c0 = clients[0]!
    c0.sock.resume()
    await waitFor('the whole body for the held client', () => c0.bytes() > BIG, 15_000)
    c0.sock.destroy()
  })
})
