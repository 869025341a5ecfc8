import { afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Value } from '@sinclair/typebox/value'
import { spikeControl, setSpikeClock } from '../../../../src/worker/policies/spike-control/handler.js'
import { schema } from '../../../../src/worker/policies/spike-control/schema.js'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { DownstreamListener } from '../../../../src/worker/downstream.js'
import type { LocalResponse, PolicyContext, RequestResult } from '../../../../src/worker/policies/types.js'
import { FakeClock } from './fake-clock.js'

/** The slice of an Exchange the policy touches. */
function fakeExchange() {
  const done: string[] = []
  const down = { live: true, listener: null as DownstreamListener | null }
  const ex = { down, hooks: { done: (_ex: unknown, outcome: string) => { done.push(outcome) } } }
  return { ex: ex as unknown as Exchange, down, done }
}

let seq = 0
function create(config: Record<string, unknown>, clock: FakeClock) {
  setSpikeClock(clock)
  const ctx = { id: `t/${++seq}`, api: 't', services: { leases: null } } as unknown as PolicyContext
  return spikeControl.create({ maximumRequests: 10, timePeriodInMilliseconds: 1000, ...config } as never, ctx).request!
}

afterEach(() => setSpikeClock(null))

describe('spike-control handler', () => {
  test('the schema fills the enterprise gateway defaults', () => {
    const c = Value.Default(schema, { maximumRequests: 1, timePeriodInMilliseconds: 1000 }) as Record<string, unknown>
    assert.deepEqual(c, { maximumRequests: 1, timePeriodInMilliseconds: 1000, burst: 1, delayTimeInMillis: 1000, delayAttempts: 1, queuingLimit: 5 })
    assert.equal(Value.Check(schema, { maximumRequests: 0, timePeriodInMilliseconds: 1000 }), false)
  })

  test('an admitted request is answered synchronously with undefined', () => {
    const fn = create({}, new FakeClock())
    assert.equal(fn(fakeExchange().ex), undefined)
  })

  test('a request over the rate gets a promise that resolves undefined when admitted', async () => {
    const clock = new FakeClock()
    const fn = create({ delayTimeInMillis: 100, delayAttempts: 2 }, clock)
    fn(fakeExchange().ex)
    const { ex, down } = fakeExchange()
    const p = fn(ex)
    assert.ok(p instanceof Promise)
    assert.notEqual(down.listener, null, 'listens for a client abort while waiting')
    clock.advance(100)
    assert.equal(await p, undefined)
    assert.equal(down.listener, null)
  })

  test('a full queue answers 429 GH_ERR_SPIKE_QUEUE_FULL with Retry-After at once', () => {
    const clock = new FakeClock()
    const fn = create({ queuingLimit: 1 }, clock)
    fn(fakeExchange().ex)
    assert.ok(fn(fakeExchange().ex) instanceof Promise)
    const r = fn(fakeExchange().ex) as LocalResponse
    assert.equal(r.status, 429)
    assert.equal(r.code, 'GH_ERR_SPIKE_QUEUE_FULL')
    assert.deepEqual(r.headers, ['retry-after', '1'])
  })

  test('attempts exhausted resolves with 429 and Retry-After', async () => {
    const clock = new FakeClock()
    const fn = create({ maximumRequests: 1, timePeriodInMilliseconds: 5000, delayTimeInMillis: 100, delayAttempts: 2 }, clock)
    fn(fakeExchange().ex)
    const p = fn(fakeExchange().ex) as Promise<RequestResult>
    clock.advance(200)
    const r = (await p)!
    assert.equal(r.status, 429)
    assert.equal(r.headers![0], 'retry-after')
    assert.ok(Number(r.headers![1]) >= 4)
  })

  test('a client abort while queued ends the exchange, frees the slot and is never admitted', async () => {
    const clock = new FakeClock()
    const fn = create({ queuingLimit: 1, delayTimeInMillis: 100, delayAttempts: 5 }, clock)
    fn(fakeExchange().ex)
    const a = fakeExchange()
    const p = fn(a.ex) as Promise<RequestResult>
    a.down.live = false
    a.down.listener!.onClientAbort()
    assert.deepEqual(a.done, ['client-abort'])
    const r = await p
    assert.notEqual(r, undefined, 'the chain stops here (the answer goes nowhere)')
    const b = fakeExchange()
    const pb = fn(b.ex)
    assert.ok(pb instanceof Promise, 'the slot was freed')
    clock.advance(100)
    assert.equal(await pb, undefined)
  })

  test('a client already gone takes no token', () => {
    const fn = create({ maximumRequests: 1 }, new FakeClock())
    const gone = fakeExchange()
    gone.down.live = false
    assert.equal(fn(gone.ex), undefined)
    assert.equal(fn(fakeExchange().ex), undefined, 'the token is still there')
  })
})
