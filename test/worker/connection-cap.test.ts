/**
 * The connection cap as a unit, on an injected descriptor count: when it stops and starts
 * accepting (hysteresis), what it subtracts, and that the costly count is skipped while the
 * descriptor table cannot hold the cap. test/integration/connection-cap.test.ts drives a real worker.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConnectionCap, RESUME_AT } from '../../src/worker/connection-cap.js'
import type { Logger } from '../../src/telemetry/runtime-log.js'

function harness(baseFds: number) {
  const codes: string[] = []
  const push = (code: string): void => { codes.push(code) }
  const log: Logger = { debug: push, info: push, warn: push, error: push, setLevel() {} }
  const s = { fds: baseFds, bound: 64, upstream: 0, counts: 0, pauses: 0, resumes: 0 }
  const cap = new ConnectionCap({
    pause: () => { s.pauses++ },
    resume: async () => { s.resumes++ },
    upstreamConnections: () => s.upstream,
  }, log, { count: () => { s.counts++; return s.fds }, bound: () => s.bound })
  return { cap, s, codes }
}

test('stops accepting at the cap and starts again below 90 % of it, once each', async () => {
  const { cap, s, codes } = harness(12)
  cap.configure(100)
  s.bound = 1024
  s.fds = 12 + 99
  cap.check()
  assert.equal(cap.capped, false)
  s.fds = 12 + 100
  cap.check()
  cap.check()
  assert.deepEqual([cap.capped, s.pauses, cap.episodes], [true, 1, 1])
  s.fds = 12 + 100 * RESUME_AT
  cap.check()
  assert.equal(cap.capped, true, 'at 90 % it still does not accept')
  s.fds = 12 + 100 * RESUME_AT - 1
  cap.check()
  cap.check()
  await new Promise((r) => setImmediate(r))
  assert.deepEqual([cap.capped, s.resumes], [false, 1])
  assert.deepEqual(codes, ['GH_WRN_CONNECTIONS_CAPPED', 'GH_WRN_CONNECTIONS_UNCAPPED'])
  cap.close()
})

test('upstream connections and the descriptors held before serving are not client connections', () => {
  const { cap, s } = harness(30)
  s.upstream = 5
  cap.configure(50) // baseline: 30 descriptors, 5 of them upstream connections
  s.bound = 1024
  s.upstream = 60
  s.fds = 30 - 5 + 60 + 49
  assert.equal(cap.connections(), 49)
  cap.check()
  assert.equal(cap.capped, false)
  s.fds++
  cap.check()
  assert.equal(cap.capped, true)
  cap.close()
})

test('the descriptors are not counted while the table cannot hold the cap', () => {
  const { cap, s } = harness(10)
  cap.configure(1000)
  const after = s.counts
  s.bound = 512
  cap.check()
  assert.equal(s.counts, after)
  s.bound = 2048
  cap.check()
  assert.equal(s.counts, after + 1)
  cap.close()
})

test('0 turns the cap off and a capped worker accepts again', async () => {
  const { cap, s } = harness(10)
  cap.configure(5)
  s.bound = 64
  s.fds = 20
  cap.check()
  assert.equal(cap.capped, true)
  cap.configure(0)
  await new Promise((r) => setImmediate(r))
  assert.deepEqual([cap.capped, s.resumes], [false, 1])
})
