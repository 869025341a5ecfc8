/**
 * One real gateway (the built CLI, catchAllConfig: base path /p, catch-all route) in
 * front of one upstream that records the raw header list of every request it gets, and
 * the oracles of the header properties. Used by test/integration/property-headers.test.ts
 * and test/fuzz/fuzz-headers.mjs; needs `npm run build` (dist/).
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import {
  catchAllConfig, freePort, startGateway, startUpstream, statusOf, stopAndCheck, tempDir, writeConfig, type Gateway, type Upstream,
} from '../helpers/gateway.js'
import { GATEWAY_ADDED, requestBytes, type BadHeaderCase, type HeaderCase } from './arbitraries.js'

export interface RawResult {
  text: string
  /** Of the response's status line; 0 for none. */
  status: number
  /** The server closed the connection (FIN or reset). */
  closed: boolean
  /** Neither closed nor finished within the timeout: the client gave up. */
  timedOut: boolean
  ms: number
}

/** Writes `bytes` on a fresh connection and reads until the server closes it or `timeoutMs` passes. */
export function sendRaw(port: number, bytes: Buffer, timeoutMs: number): Promise<RawResult> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    let settled = false
    const finish = (closed: boolean, timedOut: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      s.destroy()
      resolve({ text, status: statusOf(text), closed, timedOut, ms: performance.now() - t0 })
    }
    const timer = setTimeout(() => finish(false, true), timeoutMs)
    s.on('data', (c: Buffer) => { text += c.toString('latin1') })
    s.on('end', () => finish(true, false))
    s.on('close', () => finish(true, false))
    s.on('error', () => finish(true, false))
    s.write(bytes)
  })
}

function problemCode(text: string): string | undefined {
  try {
    return (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code?: string }).code
  } catch {
    return undefined
  }
}

export interface HeaderRig {
  gw: Gateway
  up: Upstream
  port: number
  /** Upstream path → raw header list (`req.rawHeaders`) of the request that reached it. */
  received: Map<string, string[]>
  /** A fresh request path (/p/r<n>); the upstream sees it as /r<n>. */
  nextPath(): { path: string; upstreamPath: string }
  /** (2a) A valid header set is answered 200 and the upstream gets exactly it, in order. */
  checkRoundTrip(c: HeaderCase, timeoutMs?: number): Promise<void>
  /** (2b) An invalid one is answered 400 or closed, and the upstream gets nothing. */
  checkRejected(c: BadHeaderCase, timeoutMs: number): Promise<RawResult>
  /** A plain valid request is still proxied (200) within `timeoutMs`. */
  checkServing(timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

export async function startHeaderRig(): Promise<HeaderRig> {
  const received = new Map<string, string[]>()
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 })
    res.end('ok')
  })
  // On 'request' (headers parsed), not on the body's end: anything that got this far counts.
  up.server.on('request', (req) => { received.set(req.url ?? '', req.rawHeaders.slice()) })
  const port = await freePort()
  const dir = tempDir('gh-prop-headers-')
  // A short drain: stop() must not wait 25 s for requests a wedged worker never answers.
  writeConfig(dir, { 'gatehouse.yaml': catchAllConfig(port, '/p', [up.origin], { host: '  drainTimeoutMs: 2000\n' }) })
  let gw: Gateway
  try {
    gw = await startGateway(dir)
  } catch (err) {
    await up.close()
    fs.rmSync(dir, { recursive: true, force: true })
    throw err
  }
  let n = 0

  const rig: HeaderRig = {
    gw, up, port, received,
    nextPath() {
      n++
      return { path: `/p/r${n}`, upstreamPath: `/r${n}` }
    },

    async checkRoundTrip(c, timeoutMs = 5000) {
      const { path, upstreamPath } = rig.nextPath()
      const r = await sendRaw(port, requestBytes(path, c), timeoutMs)
      assert.ok(!r.timedOut, `no response within ${timeoutMs} ms (got ${JSON.stringify(r.text.slice(0, 200))})`)
      assert.equal(statusOf(r.text), 200, `the client gets 200; response: ${JSON.stringify(r.text.slice(0, 400))}`)
      const raw = received.get(upstreamPath)
      assert.ok(raw !== undefined, 'the request reached the upstream')
      const got: [string, string][] = []
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase()
        if (!GATEWAY_ADDED.has(name)) got.push([name, raw[i + 1]!])
      }
      const want = c.headers.map(([k, v]) => [k.toLowerCase(), v])
      assert.deepEqual(got, want, 'the upstream receives exactly the client\'s headers, in order (names lowercase)')
      received.delete(upstreamPath)
    },

    async checkRejected(c, timeoutMs) {
      const { path, upstreamPath } = rig.nextPath()
      const r = await sendRaw(port, requestBytes(path, c), timeoutMs)
      const status = r.status
      assert.ok(!r.timedOut, `neither an answer nor a close within ${timeoutMs} ms (got ${JSON.stringify(r.text.slice(0, 200))})`)
      assert.ok(status === 400 || (r.text === '' && r.closed), `400 or a close without a response; got ${JSON.stringify(r.text.slice(0, 300))}`)
      if (status === 400) assert.equal(problemCode(r.text), 'GH_ERR_REQUEST_MALFORMED')
      assert.ok(!received.has(upstreamPath), 'nothing reaches the upstream')
      return r
    },

    async checkServing(timeoutMs = 5000) {
      const { path, upstreamPath } = rig.nextPath()
      const r = await sendRaw(port, requestBytes(path, { headers: [], hostAt: 0, connectionAt: 1 }), timeoutMs)
      assert.ok(!r.timedOut, `a valid request got no response within ${timeoutMs} ms`)
      assert.equal(statusOf(r.text), 200, `a valid request is proxied; response: ${JSON.stringify(r.text.slice(0, 300))}`)
      assert.ok(received.delete(upstreamPath), 'the valid request reached the upstream')
    },

    async stop() {
      try {
        await stopAndCheck(gw)
      } finally {
        await up.close()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
  }
  return rig
}
