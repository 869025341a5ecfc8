/**
 * Properties of request headers through one real gateway (issue 7), raw HTTP/1.1 on one
 * socket per run (`Connection: close`), an upstream recording `req.rawHeaders`:
 *  - valid header sets reach the upstream exactly, in order, duplicates included;
 *  - invalid ones are answered 400 or closed, and the upstream gets nothing.
 * Bounded by numRuns and a time limit each; `node --import tsx test/fuzz/fuzz-headers.mjs`
 * runs them for longer. What the pinned uWS build does before our code runs is in
 * docs/uws-parser-findings.md.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { delHeaderCaseArb, uwsRejectedCaseArb, validHeaderCaseArb, type BadHeaderCase, type HeaderCase } from '../property/arbitraries.js'
import { startHeaderRig, type HeaderRig } from '../property/header-rig.js'

const TIME_LIMIT_MS = 20_000
const params = <T>(numRuns: number, examples: T[] = []) => ({
  numRuns, examples, includeErrorInReport: true, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
})

describe('request headers through the gateway (properties)', () => {
  let rig: HeaderRig

  before(async () => { rig = await startHeaderRig() })
  after(async () => { await rig?.stop() })

  test('(a) valid header sets reach the upstream exactly, in order, duplicate names kept; the client gets 200', async () => {
    const examples: [HeaderCase][] = [
      // Duplicates of one name in several spellings, interleaved: uWS lists each, undici sends each.
      [{ headers: [['X-Dup', '1'], ['accept', '*/*'], ['x-dup', '2'], ['X-DUP', ''], ['Cookie', 'a=1'], ['cookie', 'b=2']], hostAt: 3, connectionAt: 0 }],
      // Inner SP/HTAB, an empty value, every character uWS takes in a name.
      [{ headers: [['x-a', 'a \t b'], ['x-empty', ''], ['-09azAZ', 'v'], ['x-all', '!"#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~']], hostAt: 0, connectionAt: 9 }],
      // 38 headers + Host + Connection: the default maxHeaderCount (40) exactly.
      [{ headers: Array.from({ length: 38 }, (_, i) => [`x-h${i}`, `v${i}`] as const), hostAt: 17, connectionAt: 38 }],
    ]
    await fc.assert(fc.asyncProperty(validHeaderCaseArb, (c) => rig.checkRoundTrip(c)), params(300, examples))
  })

  const delExamples: [BadHeaderCase][] = [
    [{ headers: [], hostAt: 0, connectionAt: 1, bad: ['x-a', 'a\x7fb'], badAt: 0 }],
    [{ headers: [['accept', '*/*']], hostAt: 0, connectionAt: 0, bad: ['user-agent', '\x7f'], badAt: 1 }],
  ]

  test('(b) a value with DEL is answered 400 GH_ERR_REQUEST_MALFORMED at once and nothing reaches the upstream', async () => {
    // At most 120 runs: each one currently costs its worker one of the endpoint's 128 pool
    // clients (see the TODO test below); past that, requests hang instead of getting 400.
    await fc.assert(fc.asyncProperty(delHeaderCaseArb, async (c) => {
      const r = await rig.checkRejected(c, 5000)
      assert.ok(r.status === 400, `answered 400, not closed (${r.ms.toFixed(0)} ms)`)
    }), params(120, delExamples))
  })

  test('(b) control characters in values, non-token names and names with tchars other than letters, digits and "-": uWS closes without a response (after ~10–12 s) and nothing reaches the upstream', async (t) => {
    // The pinned uWS build drops these before any JS runs and only closes the connection at
    // its idle timeout (findings §6, §10: "HANG"); no 400 can be sent. That wait cannot be
    // shortened from JS, so the cases run concurrently, once, with a seed printed for replay.
    const seed = Number(process.env.GH_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31))
    const fixed: BadHeaderCase[] = [
      { headers: [['accept', '*/*']], hostAt: 0, connectionAt: 2, bad: ['x_custom', 'v'], badAt: 1 }, // a valid name
      { headers: [], hostAt: 0, connectionAt: 1, bad: ['x-a', 'a\x01b'], badAt: 0 },
      { headers: [], hostAt: 0, connectionAt: 1, bad: ['x(a)', 'v'], badAt: 1 },
    ]
    const cases = [...fixed, ...fc.sample(uwsRejectedCaseArb, { numRuns: 21, seed })]
    const before = rig.received.size
    const results = await Promise.all(cases.map(async (c) => {
      try {
        return { c, r: await rig.checkRejected(c, 16_000), error: null }
      } catch (err) {
        return { c, r: null, error: err as Error }
      }
    }))
    const failed = results.filter((x) => x.error !== null)
    assert.deepEqual(failed.map((x) => `${fc.stringify(x.c)}: ${x.error!.message}`), [], `seed ${seed} (GH_PROPERTY_SEED=${seed} replays it)`)
    assert.equal(rig.received.size, before, 'no request of any case reached the upstream')
    const ms = results.map((x) => x.r!.ms)
    t.diagnostic(`seed ${seed}: ${cases.length} cases closed without a response after ${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)} ms`)
  })

  // Runs last: when it fails, the gateway's pools are wedged for every later request.
  // Once a bug: a header undici refuses (DEL, or obs-text that uWS turns into U+FFFD) marked one
  // undici pool client "needDrain" for good, and after connectionsPerEndpoint of them a worker
  // queued every request to that endpoint forever. The gateway now refuses them first.
  test('(b) after rejecting a value with DEL the gateway keeps serving: the next valid request is proxied', async () => {
    await fc.assert(fc.asyncProperty(delHeaderCaseArb, async (c) => {
      await rig.checkRejected(c, 5000)
      await rig.checkServing()
    }), { ...params(300, delExamples), plugins: [fc.interruptAfterTimeLimit(10_000)] })
  })
})
