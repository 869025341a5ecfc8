import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { catchAllConfig, freePort, rawRequest, sleep, startGateway, startUpstream, statusOf, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * Framing and limits at their boundaries. Every rejected case also checks that nothing
 * reached the upstream. What the pinned uWS build does by itself before our handler runs
 * (close or hang, never a status) is recorded in docs/uws-parser-findings.md; those cases
 * assert what a client actually gets: no response, a closed connection, nothing upstream.
 */

const LIMITS = { maxUrlBytes: 1000, maxHeaderBytes: 2000, maxHeaderCount: 20 }
const MAX_BODY = 1000

describe('request framing and limits', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  /** Upstream hits, counted from the socket level so aborted requests count too. */
  let hits = 0

  before(async () => {
    up = await startUpstream()
    up.server.on('request', () => { hits++ })
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': catchAllConfig(port, '/f', [up.origin], {
        api: `  maxRequestBodyBytes: ${MAX_BODY}\n`,
        host: `  limits: { maxUrlBytes: ${LIMITS.maxUrlBytes}, maxHeaderBytes: ${LIMITS.maxHeaderBytes}, maxHeaderCount: ${LIMITS.maxHeaderCount} }\n`,
      }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  /** Sends raw bytes; returns the status (0 = none) and whether the upstream was reached. */
  async function send(bytes: string, idleMs = 1500): Promise<{ status: number; reached: boolean; text: string; closed: boolean }> {
    const before = hits
    const r = await rawRequest(port, bytes, idleMs)
    await sleep(50)
    return { status: statusOf(r.text), reached: hits > before, text: r.text, closed: r.closed }
  }

  function problemCode(text: string): string {
    const body = text.slice(text.indexOf('\r\n\r\n') + 4)
    return (JSON.parse(body) as { code: string }).code
  }

  const H = 'Host: t\r\n'

  test('a well-formed request is proxied (the baseline for every rejection below)', async () => {
    const r = await send(`GET /f/ok HTTP/1.1\r\n${H}\r\n`)
    assert.equal(r.status, 200)
    assert.ok(r.reached)
  })

  test('two Content-Length headers with the same value are rejected with 400 and nothing sent upstream', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`)
    assert.equal(r.status, 400)
    assert.equal(problemCode(r.text), 'GH_ERR_REQUEST_FRAMING')
    assert.ok(!r.reached)
    assert.ok(r.closed, 'the connection is closed after a framing error')
  })

  test('conflicting Content-Length headers are rejected with 400 and nothing is sent upstream', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde`)
    assert.equal(r.status, 400)
    assert.equal(problemCode(r.text), 'GH_ERR_REQUEST_FRAMING')
    assert.ok(!r.reached)
  })

  test('a request smuggled behind conflicting Content-Length headers is never served', async () => {
    // uWS frames by the first length and would parse the rest as a second request. With our
    // 400 still pending, uWS kills the connection instead of dispatching it (findings §6, §11).
    const smuggled = `GET /f/smuggled HTTP/1.1\r\n${H}\r\n`
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: ${3 + smuggled.length}\r\n\r\nabc${smuggled}`)
    assert.ok(r.status === 400 || (r.status === 0 && r.closed), `got status ${r.status}, closed ${r.closed}`)
    assert.ok(!r.reached, 'neither the POST nor the smuggled GET may reach the upstream')
    assert.ok(!up.requests.some((q) => q.url === '/smuggled'))
    assert.ok((r.text.match(/HTTP\/1\.1 200/g) ?? []).length === 0, 'no 200 for the smuggled request')
  })

  test('Content-Length with a list value is rejected and nothing is sent upstream', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`)
    assert.ok(r.status === 400 || r.status === 0, `got ${r.status}`)
    assert.ok(!r.reached)
  })

  test('an empty Content-Length is rejected with 400', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`)
    assert.equal(r.status, 400)
    assert.ok(!r.reached)
  })

  test('both Content-Length and Transfer-Encoding: the connection is closed and nothing is sent upstream', async () => {
    // uWS closes this itself before our handler runs (findings §1): no status can be sent.
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
    assert.ok(r.status === 400 || (r.status === 0 && r.closed), `got status ${r.status}, closed ${r.closed}`)
    assert.ok(!r.reached)
  })

  for (const te of ['gzip, chunked', 'identity', 'chunked, chunked', 'xchunked']) {
    test(`Transfer-Encoding "${te}" is answered 501 and nothing is sent upstream`, async () => {
      const r = await send(`POST /f/x HTTP/1.1\r\n${H}Transfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
      assert.equal(r.status, 501)
      assert.equal(problemCode(r.text), 'GH_ERR_REQUEST_TE_UNSUPPORTED')
      assert.ok(!r.reached)
    })
  }

  test('two Transfer-Encoding headers are rejected with 400', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
    assert.equal(r.status, 400)
    assert.ok(!r.reached)
  })

  test('a bad chunk size never reaches the upstream', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`)
    assert.notEqual(r.status, 200)
    assert.ok(!r.reached)
  })

  test('an oversized hex chunk size never reaches the upstream', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n`)
    assert.notEqual(r.status, 200)
    assert.ok(!r.reached)
  })

  test('a valid chunked body is re-framed and reaches the upstream whole', async () => {
    const r = await send(`POST /f/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`)
    assert.equal(r.status, 200)
    assert.equal(up.requests.at(-1)!.body.toString(), 'hello world')
  })

  test('an obs-folded header line gets no response and nothing is sent upstream', async () => {
    const r = await send(`GET /f/x HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n\r\n`, 1500)
    assert.equal(r.status, 0)
    assert.ok(!r.reached)
  })

  test('whitespace between a header name and its colon gets no response and nothing is sent upstream', async () => {
    const r = await send(`GET /f/x HTTP/1.1\r\n${H}X-A : a\r\n\r\n`, 1500)
    assert.equal(r.status, 0)
    assert.ok(!r.reached)
  })

  test('a duplicate Host header is rejected with 400', async () => {
    const r = await send(`GET /f/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`)
    assert.equal(r.status, 400)
    assert.ok(!r.reached)
  })

  test('TRACE is refused with 405', async () => {
    const r = await send(`TRACE /f/x HTTP/1.1\r\n${H}\r\n`)
    assert.equal(r.status, 405)
    assert.ok(!r.reached)
  })

  /** A request line whose target (path + "?" + query) is exactly n bytes. */
  function target(n: number): string {
    const base = '/f/'
    return base + 'a'.repeat(n - base.length - 3) + '?q='
  }

  test('a request-target of exactly maxUrlBytes is accepted and one byte more is 414', async () => {
    const ok = await send(`GET ${target(LIMITS.maxUrlBytes)} HTTP/1.1\r\n${H}\r\n`)
    assert.equal(ok.status, 200)
    const tooLong = await send(`GET ${target(LIMITS.maxUrlBytes + 1)} HTTP/1.1\r\n${H}\r\n`)
    assert.equal(tooLong.status, 414)
    assert.equal(problemCode(tooLong.text), 'GH_ERR_REQUEST_URI_TOO_LONG')
    assert.ok(!tooLong.reached)
  })

  /** Headers totalling exactly n bytes by the gateway's measure (name + value + 4 each). */
  function headersOf(n: number): string {
    // Host: t counts 4 + 1 + 4 = 9.
    const rest = n - 9
    const name = 'x-fill'
    const value = 'v'.repeat(rest - name.length - 4)
    return `${H}${name}: ${value}\r\n`
  }

  test('a header section of exactly maxHeaderBytes is accepted and one byte more is 431', async () => {
    const ok = await send(`GET /f/h HTTP/1.1\r\n${headersOf(LIMITS.maxHeaderBytes)}\r\n`)
    assert.equal(ok.status, 200)
    const big = await send(`GET /f/h HTTP/1.1\r\n${headersOf(LIMITS.maxHeaderBytes + 1)}\r\n`)
    assert.equal(big.status, 431)
    assert.equal(problemCode(big.text), 'GH_ERR_REQUEST_HEADERS_TOO_LARGE')
    assert.ok(!big.reached)
  })

  function headerCount(n: number): string {
    let h = H
    for (let i = 1; i < n; i++) h += `x-h${i}: ${i}\r\n`
    return h
  }

  test('maxHeaderCount header fields are accepted and one more is 431', async () => {
    const ok = await send(`GET /f/c HTTP/1.1\r\n${headerCount(LIMITS.maxHeaderCount)}\r\n`)
    assert.equal(ok.status, 200)
    const many = await send(`GET /f/c HTTP/1.1\r\n${headerCount(LIMITS.maxHeaderCount + 1)}\r\n`)
    assert.equal(many.status, 431)
    assert.ok(!many.reached)
  })

  test('a body of exactly maxRequestBodyBytes is accepted and one byte more is 413 before anything is sent', async () => {
    const ok = await send(`POST /f/b HTTP/1.1\r\n${H}Content-Length: ${MAX_BODY}\r\n\r\n${'b'.repeat(MAX_BODY)}`)
    assert.equal(ok.status, 200)
    assert.equal(up.requests.at(-1)!.body.length, MAX_BODY)
    const big = await send(`POST /f/b HTTP/1.1\r\n${H}Content-Length: ${MAX_BODY + 1}\r\n\r\n${'b'.repeat(MAX_BODY + 1)}`)
    assert.equal(big.status, 413)
    assert.equal(problemCode(big.text), 'GH_ERR_REQUEST_BODY_TOO_LARGE')
    assert.ok(!big.reached)
  })

  test('a Content-Length of ten digits closes the connection and nothing is sent upstream', async () => {
    // uWS frames at most 9 digits and aborts the connection right after our handler ran
    // (findings §7), so the 413 we answer cannot reach the client; bodies that large go chunked.
    const r = await send(`POST /f/b HTTP/1.1\r\n${H}Content-Length: 1000000000\r\n\r\n`)
    assert.ok(r.status === 413 || (r.status === 0 && r.closed), `got status ${r.status}, closed ${r.closed}`)
    assert.ok(!r.reached)
  })

  function chunked(total: number, chunk = 300): string {
    let s = ''
    for (let left = total; left > 0; left -= chunk) {
      const n = Math.min(chunk, left)
      s += `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n`
    }
    return s + '0\r\n\r\n'
  }

  test('a chunked body of exactly maxRequestBodyBytes is accepted and one byte more is 413 while streaming', async () => {
    const n = up.requests.length
    const ok = await send(`POST /f/cb HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(MAX_BODY)}`)
    assert.equal(ok.status, 200)
    assert.equal(up.requests.length, n + 1)
    assert.equal(up.requests.at(-1)!.body.length, MAX_BODY)
    const big = await send(`POST /f/cb HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(MAX_BODY + 1)}`)
    assert.equal(big.status, 413)
    await sleep(200)
    assert.equal(up.requests.length, n + 1, 'the over-limit body never completes upstream')
  })
})

describe('header values undici would refuse', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let hits = 0

  before(async () => {
    up = await startUpstream()
    up.server.on('request', () => { hits++ })
    port = await freePort()
    const dir = tempDir()
    // Two upstream connections per worker: before the fix, two refused requests wedged a worker's pool.
    writeConfig(dir, { 'a.yaml': catchAllConfig(port, '/f', [up.origin], { service: '  connectionsPerEndpoint: 2\n' }) })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('DEL and non-UTF-8 bytes in a value get 400 GH_ERR_REQUEST_MALFORMED, reach no upstream, and never wedge the pool', async () => {
    const bad = [Buffer.from('X-A: a\x7fb\r\n', 'latin1'), Buffer.from('X-A: a\xe9b\r\n', 'latin1'), Buffer.from('User-Agent: x\xffy\r\n', 'latin1')]
    for (let i = 0; i < 12; i++) {
      const before = hits
      const r = await rawRequest(port, Buffer.concat([Buffer.from('GET /f/x HTTP/1.1\r\nHost: t\r\n'), bad[i % bad.length]!, Buffer.from('Connection: close\r\n\r\n')]))
      assert.equal(statusOf(r.text), 400, `case ${i % bad.length}: ${r.text.slice(0, 40)}`)
      assert.equal(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)).code, 'GH_ERR_REQUEST_MALFORMED')
      assert.equal(hits, before, 'nothing reached the upstream')
    }
    // More refusals than both workers have pool connections: every valid request is still proxied.
    for (let i = 0; i < 6; i++) {
      const r = await rawRequest(port, 'GET /f/ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', 3000)
      assert.equal(statusOf(r.text), 200, `valid request ${i}: ${r.text.slice(0, 80) || '(no response)'}`)
    }
  })
})
