/**
 * The HTTP/1.1 upstream client (src/worker/upstream-client/) against real servers on
 * 127.0.0.1: raw node:net servers where the exact bytes or the connection's life matter,
 * node:http where an ordinary server is enough. The gateway-level behaviour (framing,
 * malformed and hostile upstreams, streaming, retries) is in test/integration/.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import { H1Pool, type H1PoolOptions } from '../../src/worker/upstream-client/pool.js'
import type { DispatchHandler, DispatchOptions } from '../../src/worker/upstream-client/dispatch.js'

interface Result { status: number, headers: string[], body: Buffer, error: (Error & { code?: string }) | null }

const OPTS: H1PoolOptions = { connections: 4, connectTimeout: 2000, headersTimeout: 5000, bodyTimeout: 5000, keepAliveTimeout: 4000, maxHeaderSize: 16384 }

/** One request through the pool; resolves on onComplete or onError, rejects if neither comes in 5 s. */
function call(pool: H1Pool, opts: Partial<DispatchOptions> = {}, handler: Partial<DispatchHandler> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const r: Result = { status: 0, headers: [], body: Buffer.alloc(0), error: null }
    const chunks: Buffer[] = []
    const t = setTimeout(() => reject(new Error('request neither completed nor failed in 5 s')), 5000)
    pool.dispatch({ path: '/', method: 'GET', headers: [], body: null, ...opts }, {
      onConnect() {},
      onHeaders(status, headers, resume, text) { r.status = status; r.headers = headers as string[]; return handler.onHeaders?.(status, headers, resume, text) ?? true },
      onData(b) { chunks.push(Buffer.from(b)); return handler.onData?.(b) ?? true },
      onComplete() { clearTimeout(t); r.body = Buffer.concat(chunks); resolve(r) },
      onError(e) { clearTimeout(t); r.error = e; r.body = Buffer.concat(chunks); resolve(r) },
    })
  })
}

/** A raw server: `onRequest(socket, head)` per request head seen; counts connections. */
async function rawServer(onRequest: (s: net.Socket, head: string) => void) {
  const stats = { connections: 0, open: 0, maxOpen: 0, heads: [] as string[] }
  const server = net.createServer((s) => {
    stats.connections++; stats.open++; stats.maxOpen = Math.max(stats.maxOpen, stats.open)
    s.on('close', () => { stats.open-- })
    s.on('error', () => {})
    let buf = ''
    s.on('data', (d) => {
      buf += d.toString('latin1')
      let i
      while ((i = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, i + 4)
        buf = buf.slice(i + 4)
        stats.heads.push(head)
        onRequest(s, head)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  return { stats, origin: `http://127.0.0.1:${port}`, port, server }
}

/** A raw server and a pool on it; `close` ends both. */
async function poolOn(onRequest: (s: net.Socket, head: string) => void, opts: Partial<H1PoolOptions> = {}) {
  const srv = await rawServer(onRequest)
  const pool = new H1Pool(srv.origin, { ...OPTS, ...opts })
  return { srv, pool, close: async () => { await pool.close(); srv.server.close() } }
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

test('keep-alive: sequential requests share one connection, with the Host line and the head as given', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK))
  for (let i = 0; i < 3; i++) {
    const r = await call(pool, { path: '/a?b=1', headers: ['x-one', '1', 'x-two', 'zwei'] })
    assert.equal(r.error, null)
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'ok')
  }
  assert.equal(srv.stats.connections, 1)
  assert.equal(srv.stats.heads[0], `GET /a?b=1 HTTP/1.1\r\nx-one: 1\r\nx-two: zwei\r\nhost: 127.0.0.1:${srv.port}\r\n\r\n`)
  assert.equal(pool.stats.connected, 1)
  await close()
})

test('a Content-Length body split across reads, then the next response on the connection is parsed as strictly as the first', async () => {
  let n = 0
  const { srv, pool, close } = await poolOn((s) => {
    if (n++ === 0) { s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n'); setTimeout(() => s.write('abc'), 30); setTimeout(() => s.write('def'), 60) }
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!')
  })
  const a = await call(pool)
  assert.equal(a.error, null)
  assert.equal(a.body.toString(), 'abcdef')
  const b = await call(pool)
  assert.equal(b.error?.code, 'HPE_UNEXPECTED_CONTENT_LENGTH')
  assert.equal(srv.stats.connections, 1, 'both went on one connection')
  await close()
})

test('requests beyond `connections` wait for a free connection, first in first out', async () => {
  const pending: net.Socket[] = []
  const { srv, pool, close } = await poolOn((s) => { pending.push(s) }, { connections: 2 })
  const order: number[] = []
  const all = [0, 1, 2, 3, 4].map((i) => call(pool, { path: `/${i}` }).then((r) => { order.push(i); return r }))
  // Answer one request at a time, as they arrive, until all five got through.
  for (let n = 0; n < 5; n++) {
    for (let k = 0; k < 100 && pending.length === 0; k++) await sleep(10)
    pending.shift()!.write(OK)
  }
  const results = await Promise.all(all)
  assert.ok(results.every((r) => r.error === null && r.status === 200))
  assert.equal(srv.stats.maxOpen, 2)
  assert.deepEqual(srv.stats.heads.map((h) => h.split(' ')[1]), ['/0', '/1', '/2', '/3', '/4'])
  await close()
})

test('an upstream that closes each connection after its response: every request fired meanwhile succeeds (the keep-alive race is retried)', async () => {
  // The server closes each connection 20 ms after its response; requests are fired from
  // setImmediate the whole time, so some land between the EOF and the socket's 'close'.
  const { srv, pool, close } = await poolOn((s) => { s.write(OK); setTimeout(() => s.end(), 20) }, { connections: 1 })
  const deadline = Date.now() + 400
  let done = 0
  while (Date.now() < deadline) {
    const r = await call(pool)
    assert.equal(r.error, null, `request ${done}: ${r.error?.message}`)
    assert.equal(r.status, 200)
    done++
    await new Promise((resolve) => setImmediate(resolve))
  }
  assert.ok(done > 5, `only ${done} requests in 400 ms`)
  assert.ok(srv.stats.connections > 2, 'the server did close connections')
  await close()
})

test('a connection the keep-alive sweep closes leaves the pool at once: a request in the same tick opens a new one', async () => {
  // White-box: the sweep's own entry point on the pool's idle connection, then a dispatch
  // before the socket's 'close' (which comes a loop iteration later).
  const { srv, pool, close } = await poolOn((s) => s.write(OK))
  assert.equal((await call(pool)).status, 200)
  const idle = (pool as unknown as { idle: Array<{ wait: number, timedOut(): void }> }).idle
  assert.equal(idle.length, 1)
  idle[0]!.timedOut() // as if keepAliveTimeout passed (wait is Idle)
  const r = await call(pool)
  assert.equal(r.error, null, r.error?.message)
  assert.equal(r.status, 200)
  assert.equal(srv.stats.connections, 2)
  await close()
})

test('an idle connection is closed after keepAliveTimeout', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK), { keepAliveTimeout: 150 })
  assert.equal((await call(pool)).status, 200)
  assert.equal(pool.stats.connected, 1)
  for (let k = 0; k < 100 && srv.stats.open > 0; k++) await sleep(20)
  assert.equal(srv.stats.open, 0)
  assert.equal(pool.stats.connected, 0)
  assert.equal((await call(pool)).status, 200, 'a new connection is opened afterwards')
  assert.equal(srv.stats.connections, 2)
  await close()
})

test('a connection that connects after its request went elsewhere is closed after keepAliveTimeout, unused', async () => {
  // Under load the pool opens a connection for a queued request, and a busy connection
  // that frees up first takes it; the new one then connects to nothing. White-box: open
  // one with nobody waiting. The upstream never closes a connection that carried no request.
  const { srv, pool, close } = await poolOn((s) => s.write(OK), { keepAliveTimeout: 150 })
  try {
    ;(pool as unknown as { open(): void }).open()
    for (let k = 0; k < 100 && srv.stats.connections === 0; k++) await sleep(10)
    assert.equal(srv.stats.connections, 1)
    for (let k = 0; k < 100 && srv.stats.open > 0; k++) await sleep(20)
    assert.equal(srv.stats.open, 0, 'the unused connection was closed')
    assert.equal(pool.stats.connected, 0)
    assert.equal((await call(pool)).status, 200)
  } finally {
    await close()
  }
})

test('a refused connect fails every waiting request with ECONNREFUSED', async () => {
  const srv = await rawServer(() => {})
  srv.server.close()
  await once(srv.server, 'close')
  const pool = new H1Pool(srv.origin, { ...OPTS, connections: 2 })
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => call(pool)))
  assert.deepEqual(results.map((r) => r.error?.code), Array(5).fill('ECONNREFUSED'))
  await pool.close()
})

test('no response head within headersTimeout: UND_ERR_HEADERS_TIMEOUT, and the connection is dropped', async () => {
  const { srv, pool, close } = await poolOn(() => {}, { headersTimeout: 200 })
  const r = await call(pool)
  assert.equal(r.error?.code, 'UND_ERR_HEADERS_TIMEOUT')
  for (let k = 0; k < 50 && srv.stats.open > 0; k++) await sleep(20)
  assert.equal(srv.stats.open, 0)
  await close()
})

test('a body that stalls past bodyTimeout: UND_ERR_BODY_TIMEOUT after the bytes that came', async () => {
  const { pool, close } = await poolOn((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'), { bodyTimeout: 200 })
  const r = await call(pool)
  assert.equal(r.status, 200)
  assert.equal(r.body.toString(), 'abc')
  assert.equal(r.error?.code, 'UND_ERR_BODY_TIMEOUT')
  await close()
})

test('a request body streams upstream: Content-Length as is, unknown length chunked, under backpressure', async () => {
  const received: Array<{ head: string, bytes: number, sum: number }> = []
  const server = http.createServer((req, res) => {
    let bytes = 0
    let sum = 0
    req.on('data', (d: Buffer) => { bytes += d.length; for (const x of d) sum = (sum + x) % 65521 })
    req.on('end', () => {
      received.push({ head: `${req.headers['content-length'] ?? ''}|${req.headers['transfer-encoding'] ?? ''}`, bytes, sum })
      res.end('done')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const origin = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  const pool = new H1Pool(origin, OPTS)
  const size = 8 * 1024 * 1024
  const make = (): Readable => {
    let sent = 0
    return new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (sent >= size) { this.push(null); return }
        const n = Math.min(64 * 1024, size - sent)
        const b = Buffer.alloc(n)
        for (let i = 0; i < n; i++) b[i] = (sent + i) & 0xff
        sent += n
        this.push(b)
      },
    })
  }
  let expectSum = 0
  for (let i = 0; i < size; i++) expectSum = (expectSum + (i & 0xff)) % 65521
  const a = await call(pool, { method: 'POST', headers: ['content-length', String(size)], body: make() })
  const b = await call(pool, { method: 'POST', body: make() })
  assert.equal(a.error, null)
  assert.equal(b.error, null)
  assert.equal(a.body.toString(), 'done')
  assert.deepEqual(received, [
    { head: `${size}|`, bytes: size, sum: expectSum },
    { head: '|chunked', bytes: size, sum: expectSum },
  ])
  // An empty POST is announced as such.
  assert.equal((await call(pool, { method: 'POST' })).status, 200)
  assert.equal(received[2]!.head, '0|')
  await pool.close()
  server.close()
})

test('a head with more than 32 fields reaches the handler whole (llhttp flushes them early)', async () => {
  const fields = Array.from({ length: 70 }, (_, i) => `x-f${i}: v${i}\r\n`).join('')
  const { pool, close } = await poolOn((s) => s.write(`HTTP/1.1 200 OK\r\n${fields}Content-Length: 2\r\n\r\nok`))
  const r = await call(pool)
  assert.equal(r.headers.length, 2 * 71)
  assert.deepEqual([r.headers[0], r.headers[1], r.headers[138], r.headers[139]], ['x-f0', 'v0', 'x-f69', 'v69'])
  assert.equal(r.headers[140]!.toLowerCase(), 'content-length')
  await close()
})

test('HEAD: the Content-Length of the response is not waited for, and the connection is reused', async () => {
  const { srv, pool, close } = await poolOn((s, head) => s.write(head.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' : OK))
  const h = await call(pool, { method: 'HEAD' })
  assert.equal(h.error, null)
  assert.equal(h.body.length, 0)
  const g = await call(pool)
  assert.equal(g.body.toString(), 'ok')
  assert.equal(srv.stats.connections, 1)
  await close()
})

test('an interim 103 response is skipped; the final response is the one delivered', async () => {
  const { pool, close } = await poolOn((s) => s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n' + OK))
  const r = await call(pool)
  assert.equal(r.status, 200)
  assert.equal(r.body.toString(), 'ok')
  await close()
})

test('bytes after a complete response (in the same read) drop the connection, the response stands', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nXX'))
  const r = await call(pool)
  assert.equal(r.error, null)
  assert.equal(r.body.toString(), 'ok')
  const r2 = await call(pool)
  assert.equal(r2.body.toString(), 'ok', 'the second request is not answered with the stray bytes')
  assert.equal(srv.stats.connections, 2)
  await close()
})

test('an upstream that answers before reading the request body: the response stands, the connection is not reused', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK))
  const body = new Readable({ read() {} })
  body.push(Buffer.alloc(1000))
  const r = await call(pool, { method: 'POST', headers: ['content-length', '100000'], body })
  assert.equal(r.error, null)
  assert.equal(r.body.toString(), 'ok')
  body.destroy()
  assert.equal((await call(pool)).status, 200)
  assert.equal(srv.stats.connections, 2)
  await close()
})

test('pause: after onData returns false no more reads happen until resume', async () => {
  let sock: net.Socket | null = null
  const { pool, close } = await poolOn((s) => { sock = s; s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab') })
  let resume: (() => void) | null = null
  let chunks = 0
  const p = call(pool, {}, {
    onHeaders(_s, _h, r) { resume = r; return true },
    onData() { return ++chunks > 1 },
  })
  for (let k = 0; k < 100 && chunks === 0; k++) await sleep(10)
  assert.equal(chunks, 1)
  sock!.write('cd')
  await sleep(200)
  assert.equal(chunks, 1, 'paused: the next bytes were not delivered')
  resume!()
  sock!.write('ef')
  const r = await p
  assert.equal(r.body.toString(), 'abcdef')
  await close()
})

test('abort from onConnect writes nothing and keeps the connection; a late abort is a no-op', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK))
  assert.equal((await call(pool)).status, 200)
  const aborted = await new Promise<Error>((resolve) => {
    pool.dispatch({ path: '/', method: 'GET', headers: [], body: null }, {
      onConnect(abort) { abort(new Error('client gone')) },
      onError: resolve,
    })
  })
  assert.equal(aborted.message, 'client gone')
  let late: ((e?: Error) => void) | null = null
  const r = await call(pool, {}, {})
  assert.equal(r.status, 200)
  await new Promise<void>((resolve) => {
    pool.dispatch({ path: '/', method: 'GET', headers: [], body: null }, {
      onConnect(abort) { late = abort },
      onHeaders() { return true },
      onData() { return true },
      onComplete() { resolve() },
      onError(e) { assert.fail(e) },
    })
  })
  late!(new Error('too late'))
  assert.equal((await call(pool)).status, 200, 'the next request on the connection is not hit by the late abort')
  assert.equal(srv.stats.heads.length, 4)
  assert.equal(srv.stats.connections, 1)
  await close()
})

test('a header value with CR/LF or a path beyond latin1 is refused before any connection (UND_ERR_INVALID_ARG)', async () => {
  const { srv, pool, close } = await poolOn((s) => s.write(OK))
  assert.equal((await call(pool, { headers: ['x-a', 'b\r\nx-injected: 1'] })).error?.code, 'UND_ERR_INVALID_ARG')
  assert.equal((await call(pool, { path: '/\u4e2d' })).error?.code, 'UND_ERR_INVALID_ARG')
  assert.equal((await call(pool, { headers: ['bad name', 'x'] })).error?.code, 'UND_ERR_INVALID_ARG')
  assert.equal(srv.stats.connections, 0)
  await close()
})

test('close() lets the request in flight finish, then refuses new ones with UND_ERR_CLOSED', async () => {
  let sock: net.Socket | null = null
  const { srv, pool } = await poolOn((s) => { sock = s })
  const inFlight = call(pool)
  for (let k = 0; k < 100 && sock === null; k++) await sleep(10)
  let closed = false
  const closing = pool.close().then(() => { closed = true })
  assert.equal((await call(pool)).error?.code, 'UND_ERR_CLOSED')
  await sleep(50)
  assert.equal(closed, false, 'close waits for the request in flight')
  sock!.write(OK)
  assert.equal((await inFlight).status, 200)
  await closing
  for (let k = 0; k < 50 && srv.stats.open > 0; k++) await sleep(20)
  assert.equal(srv.stats.open, 0)
  srv.server.close()
})

test('closed connections are freed: 300 connections the upstream closed leave none behind after a GC', async () => {
  // The native llhttp parser keeps its JS object, and through the callbacks the connection,
  // until it is closed; a soak run found every closed connection retained that way.
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const { srv, pool, close } = await poolOn((s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'); s.end() })
  const all = (pool as unknown as { all: Set<object> }).all
  const refs: Array<WeakRef<object>> = []
  for (let i = 0; i < 300; i++) {
    const p = call(pool)
    for (const c of all) refs.push(new WeakRef(c))
    assert.equal((await p).status, 200)
  }
  assert.equal(srv.stats.connections, 300)
  await close()
  await sleep(200) // past the timeout sweep, which forgets closed connections on its next tick
  gc()
  await sleep(10)
  gc()
  const alive = refs.filter((r) => r.deref() !== undefined).length
  assert.ok(alive <= 2, `${alive} of 300 closed connections are still in memory`)
})

