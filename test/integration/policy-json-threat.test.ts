import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import { request } from 'undici'
import { apiYaml, freePort, serviceYaml, sleep, startGateway, startUpstream, statusOf, tempDir, waitFor, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * json-threat-protection through the real gateway: the body is held until the scanner
 * passed all of it, so a rejected body never reaches the upstream (counted at the socket
 * level: the upstream's 'request' event fires on headers, before any body).
 */

const MiB = 1024 ** 2
const LIMITS = { maxDepth: 3, maxEntriesPerObject: 3, maxNameLength: 5, maxArraySize: 4, maxStringLength: 6 }

function host1(): string {
  // One worker, so the spike-control binding below delays deterministically.
  return `apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: 1
  heartbeat: { intervalMs: 250, misses: 8 }
`
}

function binding(name: string, policy: string, rules: string, config: string, order = ''): string {
  return `apiVersion: gatehouse/v1
kind: PolicyBinding
metadata: { name: ${name} }
spec:
  targetRef: { kind: ApiInstance, name: j }
  policyRef: { name: ${policy} }
  ${order}
  rules: [{ path: ${rules} }]
  config: ${config}
`
}

describe('json-threat-protection through the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let hits = 0
  let workerPid = 0

  before(async () => {
    up = await startUpstream()
    up.server.on('request', () => { hits++ })
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': apiYaml('j', port, '/j', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  maxRequestBodyBytes: ${8 * MiB}\n`) + '---\n'
        + binding('json', 'json-threat-protection', '/(json|slow)(/.*)?', JSON.stringify(LIMITS)) + '---\n'
        + binding('bigjson', 'json-threat-protection', '/bigjson',
          '{ maxDepth: 4, maxEntriesPerObject: 8, maxNameLength: 8, maxArraySize: 1000000, maxStringLength: 16 }') + '---\n'
        + binding('strict', 'json-threat-protection', '/strict(/.*)?', '{ rejectNonJson: true }') + '---\n'
        + binding('slow', 'spike-control', '/slow(/.*)?',
          '{ maximumRequests: 1, timePeriodInMilliseconds: 400, delayTimeInMillis: 400, delayAttempts: 10, queuingLimit: 5 }') + '---\n'
        + serviceYaml('s', [up.origin], '  timeouts: { connectMs: 2000, responseMs: 30000 }\n') + '---\n' + host1(),
    })
    gw = await startGateway(dir)
    workerPid = (await gw.status()).workers[0]!.pid
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  async function post(path: string, body: string | Buffer, contentType = 'application/json') {
    const before = hits
    const r = await request(`http://127.0.0.1:${port}${path}`, { method: 'POST', body, headers: { 'content-type': contentType } })
    const text = await r.body.text()
    await sleep(20)
    const p = r.headers['content-type'] === 'application/problem+json' ? JSON.parse(text) as { code: string; detail?: string } : null
    return { status: r.statusCode, code: p?.code, detail: p?.detail, reached: hits > before, upstreamBody: hits > before ? up.requests.at(-1)!.body : null }
  }

  const atLimit: Record<keyof typeof LIMITS, [string, string, RegExp]> = {
    maxDepth: ['{"a":{"b":[1]}}', '{"a":{"b":[[1]]}}', /^depth 4 exceeds maxDepth 3 at \$\.a\.b\[0\]$/],
    maxEntriesPerObject: ['{"a":1,"b":2,"c":{"d":1}}', '{"a":1,"b":2,"c":3,"d":4}', /^object entries 4 exceed maxEntriesPerObject 3 at \$$/],
    maxNameLength: ['{"abcde":1,"é€😀ab":2}', '{"x":{"abcdef":1}}', /^name length 6 exceeds maxNameLength 5 at \$\.x$/],
    maxArraySize: ['[1,2,3,[4,5,6,7]]', '{"l":[1,2,3,4,5]}', /^array size 5 exceeds maxArraySize 4 at \$\.l$/],
    maxStringLength: ['["abcdef","\\ud83d\\ude00😀\\n\\"x"]', '{"s":"abcdefg"}', /^string length 7 exceeds maxStringLength 6 at \$\.s$/],
  }
  for (const [limit, [ok, over, detail]] of Object.entries(atLimit)) {
    test(`${limit}: a body at the limit arrives upstream byte-identical, one more is 400 and never sent`, async () => {
      const a = await post('/j/json/x', ok)
      assert.equal(a.status, 200)
      assert.ok(a.reached)
      assert.deepEqual(a.upstreamBody, Buffer.from(ok))
      const b = await post('/j/json/x', over)
      assert.equal(b.status, 400)
      assert.equal(b.code, 'GH_ERR_JSON_THREAT')
      assert.match(b.detail!, detail)
      assert.ok(!b.reached, 'the upstream saw nothing')
    })
  }

  test('malformed JSON is 400 GH_ERR_JSON_INVALID and never sent', async () => {
    for (const bad of ['{"a":1,}', '[1', '{"a" 1}', 'nul']) {
      const r = await post('/j/json/x', bad)
      assert.equal(r.status, 400, bad)
      assert.equal(r.code, 'GH_ERR_JSON_INVALID')
      assert.ok(!r.reached)
    }
  })

  test('a non-JSON body passes uninspected, and is refused with rejectNonJson', async () => {
    const r = await post('/j/json/x', '{{{ not json', 'text/plain')
    assert.equal(r.status, 200)
    assert.deepEqual(r.upstreamBody, Buffer.from('{{{ not json'))
    const s = await post('/j/strict/x', 'a=1', 'application/x-www-form-urlencoded')
    assert.equal(s.status, 400)
    assert.equal(s.code, 'GH_ERR_JSON_INVALID')
    assert.ok(!s.reached)
  })

  test('a request the policy rules do not match streams its body as before', async () => {
    const r = await post('/j/other', '{"deep":[[[[[[1]]]]]]', 'application/json')
    assert.equal(r.status, 200)
    assert.deepEqual(r.upstreamBody, Buffer.from('{"deep":[[[[[[1]]]]]]'))
  })

  /** Sends a request whose body goes out in `parts`, `gapMs` apart, on a raw socket. */
  async function slowPost(path: string, parts: Buffer[], chunked: boolean, gapMs = 60) {
    const before = hits
    const total = parts.reduce((n, p) => n + p.length, 0)
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    let closed = false
    s.on('data', (c: Buffer) => { text += c.toString('latin1') })
    s.on('close', () => { closed = true })
    s.on('error', () => { closed = true })
    await new Promise((r) => s.once('connect', r))
    s.write(`POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n`
      + (chunked ? 'Transfer-Encoding: chunked\r\n\r\n' : `Content-Length: ${total}\r\n\r\n`))
    const seenMidway: number[] = []
    for (const p of parts) {
      await sleep(gapMs)
      if (closed || text !== '') break
      s.write(chunked ? Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]) : p)
      seenMidway.push(hits - before)
    }
    if (chunked && !closed && text === '') s.write('0\r\n\r\n')
    await waitFor('a response', () => text.includes('\r\n\r\n') || closed, 5000).catch(() => {})
    await sleep(100)
    s.destroy()
    return { status: statusOf(text), text, reached: hits > before, seenMidway }
  }

  for (const chunked of [true, false]) {
    test(`a violation in a late chunk of a slowly sent ${chunked ? 'chunked' : 'Content-Length'} body is rejected and nothing reaches the upstream`, async () => {
      const parts = [Buffer.from('{"a":"x","b":['), Buffer.from('"abc",'), Buffer.from('"de'), Buffer.from('f",1,'), Buffer.from('"toolong!"]}')]
      const r = await slowPost('/j/json/late', parts, chunked)
      assert.equal(r.status, 400, r.text)
      assert.match(r.text, /GH_ERR_JSON_THREAT/)
      assert.match(r.text, /string length 7 exceeds maxStringLength 6 at \$\.b\[3\]/)
      assert.ok(!r.reached, 'nothing reached the upstream')
      assert.ok(r.seenMidway.every((n) => n === 0))
    })
  }

  test('a valid body sent slowly is held whole and forwarded only after its last chunk', async () => {
    const parts = [Buffer.from('{"a":'), Buffer.from('["x",'), Buffer.from('"y"]'), Buffer.from(',"b":null}')]
    const r = await slowPost('/j/json/ok', parts, true)
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(r.seenMidway, [0, 0, 0, 0], 'nothing went upstream before the body passed')
    assert.deepEqual(up.requests.at(-1)!.body, Buffer.concat(parts))
  })

  test('chunks that arrive while an async policy (spike-control delay) runs are inspected when it finishes', async () => {
    // The first request takes the token; the next two wait in spike-control while their
    // bodies arrive in full, then are inspected: one passes, one is rejected.
    const first = post('/j/slow/1', '[1]')
    const good = post('/j/slow/2', '{"ok":["abc"]}')
    const bad = post('/j/slow/3', '{"ok":["abcdefgh"]}')
    const [a, b, c] = await Promise.all([first, good, bad])
    assert.equal(a.status, 200)
    assert.equal(b.status, 200)
    assert.equal(c.status, 400)
    assert.equal(c.code, 'GH_ERR_JSON_THREAT')
    const bodies = up.requests.slice(-3).map((q) => q.body.toString())
    assert.ok(bodies.includes('{"ok":["abc"]}'))
    assert.ok(!bodies.includes('{"ok":["abcdefgh"]}'))
  })

  test('a 5 MB valid JSON body is held, inspected and arrives byte-identical with the worker RSS bounded', async () => {
    const item = JSON.stringify({ id: -1.5e-3, name: 'abcdef', tags: ['a', 'b'] })
    const n = Math.ceil((5 * MiB) / (item.length + 1))
    const body = Buffer.from(`[${Array.from({ length: n }, () => item).join(',')}]`)
    let max = 0
    const rss = () => { const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${workerPid}/status`, 'utf8')); max = Math.max(max, m === null ? 0 : Number(m[1]) * 1024) }
    const t = setInterval(rss, 50)
    const r = await post('/j/bigjson', body)
    clearInterval(t)
    rss()
    assert.equal(r.status, 200)
    assert.ok(r.upstreamBody!.equals(body), 'byte-identical upstream')
    // The same document under the strict limits is inspected, not streamed: maxArraySize 4 stops it.
    // Raw socket: the gateway answers 400 and closes while the client is still sending, so
    // the kernel may reset the connection before the client reads the answer (no lingering
    // close): a 400 or a reset, never an upstream request.
    const h = await slowPost('/j/json/big', [body], false, 0)
    assert.ok(h.status === 400 || h.status === 0, `status ${h.status}`)
    if (h.status === 400) assert.match(h.text, /array size 5 exceeds maxArraySize 4 at \$"/)
    assert.ok(!h.reached)
    assert.ok(max < 150 * MiB, `worker RSS peaked at ${Math.round(max / MiB)} MiB`)
  })
})
