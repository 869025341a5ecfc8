/**
 * Bodies arrive byte for byte, however many stream at once, both ways. Both directions
 * reuse memory: request-body chunks are copied into recycled slabs (src/worker/body-chunks.ts)
 * given back when the upstream write completes, and the upstream client reads every
 * response into one buffer per worker, so whatever the gateway keeps of a response body
 * (read-ahead for a lagging client, downstream.ts) must be a copy. A slab given back too
 * early, or a view kept instead of a copy, would put one exchange's bytes into another's
 * body. Each body here has its own pseudo-random content, checked by SHA-256.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { createHash } from 'node:crypto'
import { catchAllConfig, gatewayFixture } from '../helpers/gateway.js'

const MiB = 1024 * 1024

/** Deterministic content per upload (xorshift32), so each body differs from every other. */
function content(seed: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  let x = seed * 2654435761 >>> 0 || 1
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    b.writeUInt32LE(x, i)
  }
  return b
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function upload(port: number, body: Buffer, chunked: boolean): Promise<{ status: number, received: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/up/x', method: 'POST', agent: false,
      headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode!, received: text }))
    })
    req.on('error', reject)
    // Uneven writes, so uWS hands the body over in chunks of varied sizes.
    let off = 0
    let k = 0
    const go = (): void => {
      while (off < body.length) {
        const n = Math.min(body.length - off, [300_000, 70_000, 1_000_000, 17_000][k++ % 4]!)
        const ok = req.write(body.subarray(off, off + n))
        off += n
        if (!ok) { req.once('drain', go); return }
      }
      req.end()
    }
    go()
  })
}

describe('request body integrity under concurrency', () => {
  const f = gatewayFixture((port, origin) => ({
    'a.yaml': catchAllConfig(port, '/up', [origin], { api: `  maxRequestBodyBytes: ${64 * MiB}\n` }),
  }), () => http.createServer((req, res) => {
    const dl = /\/dl\/(\d+)\/(\d+)$/.exec(req.url!)
    if (dl !== null) {
      const body = content(Number(dl[1]), Number(dl[2]))
      res.writeHead(200, { 'content-length': body.length })
      res.end(body)
      return
    }
    const h = createHash('sha256')
    req.on('data', (c: Buffer) => h.update(c))
    req.on('end', () => res.end(h.digest('hex')))
  }))

  test('twelve concurrent downloads of 2-5 MiB, read late by their clients (read-ahead keeps chunks), arrive unchanged', async () => {
    const sizes = Array.from({ length: 12 }, (_, i) => (2 + (i % 4)) * MiB)
    const got = await Promise.all(sizes.map((size, i) => new Promise<{ status: number, sha: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: f.port, path: `/up/dl/${i + 7}/${size}`, agent: false }, (res) => {
        const h = createHash('sha256')
        // Not reading at first: the gateway reads ahead and queues what the client does not take.
        res.pause()
        setTimeout(() => {
          res.on('data', (c: Buffer) => h.update(c))
          res.on('end', () => resolve({ status: res.statusCode!, sha: h.digest('hex') }))
          res.resume()
        }, 300)
      }).on('error', reject)
    })))
    for (let i = 0; i < sizes.length; i++) {
      assert.equal(got[i]!.status, 200)
      assert.equal(got[i]!.sha, sha(content(i + 7, sizes[i]!)), `download ${i} arrived changed`)
    }
  })

  for (const chunked of [false, true]) {
    test(`twelve concurrent ${chunked ? 'chunked' : 'Content-Length'} uploads of 3-6 MiB each arrive unchanged`, async () => {
      const bodies = Array.from({ length: 12 }, (_, i) => content(i + (chunked ? 100 : 1), (3 + (i % 4)) * MiB))
      const results = await Promise.all(bodies.map((b) => upload(f.port, b, chunked)))
      for (let i = 0; i < bodies.length; i++) {
        assert.equal(results[i]!.status, 200)
        assert.equal(results[i]!.received, sha(bodies[i]!), `upload ${i} arrived changed`)
      }
    })
  }
})
