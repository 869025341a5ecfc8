/**
 * The overload guard as a unit, on an injected clock and timer: when the one hot-path
 * number (admitLimit) changes, how episodes start and end, and that logging happens once
 * per episode, never per request. test/integration/overload.test.ts drives a real worker.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { OverloadGuard, QUIET_MS, RETRY_AFTER, TICK_MS, type Scheduler } from '../../src/worker/overload.js'
import type { Logger } from '../../src/telemetry/runtime-log.js'

interface Line { code: string; msg: string; fields: Record<string, unknown> | undefined }

function harness() {
  const lines: Line[] = []
  const push = (code: string, msg: string, fields?: Record<string, unknown>): void => { lines.push({ code, msg, fields }) }
  const log: Logger = { debug: push, info: push, warn: push, error: push, setLevel() {} }
  let t = 1000
  let timer: (() => void) | null = null
  let timers = 0
  const schedule: Scheduler = (fn, everyMs) => {
    assert.equal(everyMs, TICK_MS)
    timer = fn
    timers++
    return () => { timer = null }
  }
  const guard = new OverloadGuard(log, () => t, schedule)
  return {
    guard,
    lines,
    get timerRunning() { return timer !== null },
    get timersStarted() { return timers },
    /** Advances the clock by `ms` and fires the timer once (a timer `ms - TICK_MS` late). */
    fire(ms: number) { t += ms; assert.ok(timer !== null, 'timer running'); timer() },
    advance(ms: number) { t += ms },
  }
}

/** Shed decision as handle-request.ts makes it. */
function admits(g: OverloadGuard, inFlight: number): boolean {
  return !(inFlight >= g.admitLimit)
}

describe('OverloadGuard', () => {
  test('admits everything and runs no timer while both limits are off', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 0 })
    assert.equal(h.guard.admitLimit, Infinity)
    assert.equal(h.timerRunning, false)
    assert.ok(admits(h.guard, 1e9))
  })

  test('the in-flight cap is the admit limit: the request that would exceed it is shed', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 4, maxEventLoopLagMs: 0 })
    assert.ok(admits(h.guard, 3))
    assert.ok(!admits(h.guard, 4))
    assert.equal(h.guard.onShed(), 'in_flight')
    assert.deepEqual(h.guard.shed, { inFlight: 1, eventLoopLag: 0 })
  })

  test('an in-flight episode logs once at its first shed and once after a quiet second, with the count', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 4, maxEventLoopLagMs: 0 })
    for (let i = 0; i < 100; i++) h.guard.onShed()
    h.fire(TICK_MS)
    for (let i = 0; i < 50; i++) h.guard.onShed()
    assert.deepEqual(h.lines.map((l) => l.code), ['GH_WRN_SHEDDING_STARTED'])
    assert.equal(h.lines[0]!.fields!.reason, 'in_flight')
    // Sheds stop: the episode ends once QUIET_MS passed since the last tick that saw one.
    h.fire(TICK_MS)
    let fires = 0
    while (h.lines.length === 1 && fires < 100) { h.fire(TICK_MS); fires++ }
    assert.equal(fires, QUIET_MS / TICK_MS)
    assert.deepEqual(h.lines.map((l) => l.code), ['GH_WRN_SHEDDING_STARTED', 'GH_WRN_SHEDDING_STOPPED'])
    assert.deepEqual(h.lines[1]!.fields, { reason: 'in_flight', shed: 150 })
    // A new episode logs again.
    h.guard.onShed()
    assert.equal(h.lines.length, 3)
    assert.equal(h.lines[2]!.code, 'GH_WRN_SHEDDING_STARTED')
  })

  test('a late timer beyond maxEventLoopLagMs sheds every request until the loop was on time for a second', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 10_000, maxEventLoopLagMs: 100 })
    h.fire(TICK_MS) // first tick only starts the clock
    h.fire(TICK_MS + 99) // 99 ms late: not above the threshold
    assert.equal(h.guard.lagging, false)
    assert.ok(admits(h.guard, 0))
    h.fire(TICK_MS + 250) // 250 ms late
    assert.equal(h.guard.lagging, true)
    assert.equal(h.guard.admitLimit, 0)
    assert.ok(!admits(h.guard, 0), 'even an idle worker sheds while lagging')
    for (let i = 0; i < 10; i++) assert.equal(h.guard.onShed(), 'event_loop_lag')
    assert.deepEqual(h.guard.shed, { inFlight: 0, eventLoopLag: 10 })
    assert.deepEqual(h.lines.map((l) => [l.code, l.fields!.reason, l.fields!.lagMs]), [['GH_WRN_SHEDDING_STARTED', 'event_loop_lag', 250]])
    // On-time ticks: still shedding until QUIET_MS after the last late one.
    let waited = 0
    while (waited + TICK_MS < QUIET_MS) { h.fire(TICK_MS); waited += TICK_MS; assert.equal(h.guard.lagging, true) }
    h.fire(TICK_MS)
    assert.equal(h.guard.lagging, false)
    assert.equal(h.guard.admitLimit, 10_000)
    assert.deepEqual(h.lines.map((l) => l.code), ['GH_WRN_SHEDDING_STARTED', 'GH_WRN_SHEDDING_STOPPED'])
    assert.deepEqual(h.lines[1]!.fields, { reason: 'event_loop_lag', shed: 10, peakLagMs: 250 })
  })

  test('repeated lag within the quiet second extends one episode (one pair of log lines)', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 100 })
    h.fire(TICK_MS)
    for (let i = 0; i < 20; i++) { h.fire(TICK_MS + 300); h.fire(TICK_MS) }
    assert.equal(h.guard.lagging, true)
    for (let i = 0; i < QUIET_MS / TICK_MS; i++) h.fire(TICK_MS)
    assert.equal(h.guard.lagging, false)
    assert.deepEqual(h.lines.map((l) => l.code), ['GH_WRN_SHEDDING_STARTED', 'GH_WRN_SHEDDING_STOPPED'])
    assert.equal(h.lines[1]!.fields!.peakLagMs, 300)
  })

  test('a reload that turns lag shedding off ends the episode at once; turning all off stops the timer', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 8, maxEventLoopLagMs: 100 })
    h.fire(TICK_MS)
    h.fire(TICK_MS + 500)
    assert.equal(h.guard.admitLimit, 0)
    h.guard.configure({ maxRequestsInFlight: 8, maxEventLoopLagMs: 0 })
    assert.equal(h.guard.lagging, false)
    assert.equal(h.guard.admitLimit, 8)
    assert.equal(h.lines.at(-1)!.code, 'GH_WRN_SHEDDING_STOPPED')
    assert.equal(h.timerRunning, true, 'the in-flight cap still needs the timer to end its episodes')
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 0 })
    assert.equal(h.timerRunning, false)
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 200 })
    assert.equal(h.timerRunning, true)
    assert.equal(h.timersStarted, 2, 'configure is idempotent: one timer at a time')
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 200 })
    assert.equal(h.timersStarted, 2)
  })

  test('a restarted timer does not count the time it was off as lag', () => {
    const h = harness()
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 100 })
    h.fire(TICK_MS)
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 0 })
    h.advance(10_000)
    h.guard.configure({ maxRequestsInFlight: 0, maxEventLoopLagMs: 100 })
    h.fire(TICK_MS)
    assert.equal(h.guard.lagging, false)
  })

  test('the shed response carries Retry-After in whole seconds matching the quiet period', () => {
    assert.deepEqual(RETRY_AFTER, ['retry-after', String(QUIET_MS / 1000)])
  })
})
