import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { SpikeLimiter, SpikeWaiter, type SpikeOptions } from '../../../../src/worker/policies/spike-control/limiter.js'
import { FakeClock } from './fake-clock.js'

class W extends SpikeWaiter {
  outcome: 'admitted' | 'rejected' | null = null
  at = -1
  constructor(readonly name: string, private readonly log: string[], private readonly clock: FakeClock) { super() }
  admit(): void { this.outcome = 'admitted'; this.at = this.clock.t; this.log.push(`+${this.name}`) }
  reject(): void { this.outcome = 'rejected'; this.at = this.clock.t; this.log.push(`-${this.name}`) }
}

function setup(o: Partial<SpikeOptions>) {
  const clock = new FakeClock()
  const lim = new SpikeLimiter({ interval: 100, burst: 1, delay: 100, attempts: 3, queueLimit: 5, ...o }, clock)
  const log: string[] = []
  const w = (name: string) => new W(name, log, clock)
  return { clock, lim, log, w }
}

describe('spike-control limiter', () => {
  test('admits one request per interval and refuses the rest synchronously', () => {
    const { clock, lim } = setup({})
    assert.equal(lim.tryAdmit(), true)
    assert.equal(lim.tryAdmit(), false)
    clock.advance(99)
    assert.equal(lim.tryAdmit(), false)
    clock.advance(1)
    assert.equal(lim.tryAdmit(), true)
  })

  test('burst lets that many through back to back, then the spacing applies', () => {
    const { clock, lim } = setup({ burst: 3 })
    assert.deepEqual([lim.tryAdmit(), lim.tryAdmit(), lim.tryAdmit(), lim.tryAdmit()], [true, true, true, false])
    clock.advance(100)
    assert.deepEqual([lim.tryAdmit(), lim.tryAdmit()], [true, false])
    clock.advance(1000)
    assert.deepEqual([lim.tryAdmit(), lim.tryAdmit(), lim.tryAdmit(), lim.tryAdmit()], [true, true, true, false], 'idle time refills at most burst')
  })

  test('delayed requests are admitted in arrival order, one per tick, with a single timer', () => {
    const { clock, lim, log, w } = setup({ attempts: 10 })
    assert.equal(lim.tryAdmit(), true)
    const ws = ['a', 'b', 'c', 'd'].map(w)
    for (const x of ws) { assert.equal(lim.enqueue(x), true); clock.advance(1) }
    assert.equal(lim.tryAdmit(), false, 'a new request never overtakes waiting ones')
    clock.advance(2000)
    assert.deepEqual(log, ['+a', '+b', '+c', '+d'])
    for (let i = 1; i < ws.length; i++) assert.ok(ws[i]!.at - ws[i - 1]!.at >= 100, 'spaced by the interval at least')
    assert.equal(clock.maxLive, 1, 'never more than one timer armed')
    assert.equal(clock.live, 0, 'no timer left when the queue is empty')
    assert.equal(lim.waiting, 0)
  })

  test('the queue holds queueLimit requests and refuses one more', () => {
    const { lim, w } = setup({ queueLimit: 2 })
    lim.tryAdmit()
    assert.equal(lim.enqueue(w('a')), true)
    assert.equal(lim.enqueue(w('b')), true)
    assert.equal(lim.enqueue(w('c')), false)
    assert.equal(lim.waiting, 2)
  })

  test('waiting is off with queueLimit 0 or delayAttempts 0', () => {
    assert.equal(setup({ queueLimit: 0 }).lim.enqueue(new W('x', [], new FakeClock())), false)
    assert.equal(setup({ attempts: 0 }).lim.enqueue(new W('x', [], new FakeClock())), false)
  })

  test('a request still without a token after delayAttempts tries is rejected', () => {
    // Rate of one per second, tries every 100 ms, 3 tries: the waiter cannot make it.
    const { clock, lim, log, w } = setup({ interval: 1000, attempts: 3 })
    lim.tryAdmit()
    const a = w('a')
    lim.enqueue(a)
    clock.advance(299)
    assert.equal(a.outcome, null)
    clock.advance(1)
    assert.deepEqual(log, ['-a'])
    assert.equal(a.at, 1300)
  })

  test('ticks spent behind the head count as tries', () => {
    // Two waiters queued together, one try each: the head takes the only token, the second is out.
    const { clock, lim, log, w } = setup({ attempts: 1 })
    lim.tryAdmit()
    lim.enqueue(w('a')); lim.enqueue(w('b'))
    clock.advance(500)
    assert.deepEqual(log, ['+a', '-b'])
  })

  test('a removed waiter frees its slot, is never admitted, and the next one moves up', () => {
    const { clock, lim, log, w } = setup({ queueLimit: 2, attempts: 10 })
    lim.tryAdmit()
    const a = w('a'); const b = w('b')
    lim.enqueue(a); lim.enqueue(b)
    lim.remove(a)
    lim.remove(a) // idempotent
    assert.equal(lim.waiting, 1)
    assert.equal(lim.enqueue(w('c')), true, 'the slot is free again')
    clock.advance(1000)
    assert.deepEqual(log, ['+b', '+c'])
    assert.equal(a.outcome, null)
    assert.equal(clock.live, 0)
  })

  test('Retry-After covers the wait for the next token plus the queue ahead, at least 1 s', () => {
    const { lim, w } = setup({ interval: 1500, queueLimit: 5 })
    assert.equal(lim.retryAfterSeconds(), 1)
    lim.tryAdmit()
    lim.enqueue(w('a')); lim.enqueue(w('b'))
    assert.equal(lim.retryAfterSeconds(), Math.ceil((1500 + 2 * 1500) / 1000))
  })
})
