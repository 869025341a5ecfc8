/**
 * spike-control: smooths traffic to a steady rate, delaying requests over it instead of
 * rejecting them at once, after the enterprise gateway's Spike Control (same option
 * names) and Apigee's SpikeArrest smoothing.
 *
 * - Rate: `maximumRequests` per `timePeriodInMilliseconds`, spread evenly (one every
 *   period/maximumRequests ms), with `burst` (default 1) back-to-back requests allowed.
 * - Over the rate: the request waits (FIFO, at most `queuingLimit` at once) and is tried
 *   again every `delayTimeInMillis`, `delayAttempts` times; then, or when the queue is
 *   full, 429 GH_ERR_SPIKE_QUEUE_FULL with `Retry-After`. See ./limiter.ts.
 * - Per worker: each worker smooths its own share, so the host admits up to
 *   workers × the configured rate (the kernel spreads connections over workers). Use
 *   rate-limit for an exact host- or cluster-wide quota, and this to shape it.
 * - A client that leaves while waiting is taken out of the queue at once and never
 *   forwarded. Admitted requests pay a synchronous check; only a delayed one gets a promise.
 * - The limiter is kept per policy identity, so a reload that does not change this policy
 *   keeps its rate state and waiting requests.
 *
 * @module
 * @example
 *   policies:
 *     - policyRef: { name: spike-control }
 *       config: { maximumRequests: 10, timePeriodInMilliseconds: 1000, delayTimeInMillis: 100,
 *                 delayAttempts: 5, queuingLimit: 20 }
 */
import type { DownstreamListener } from '../../downstream.js'
import type { Exchange } from '../../exchange.js'
import { problem } from '../../local-response.js'
import type { LocalResponse, PolicyHandlers, PolicyModule, RequestResult } from '../types.js'
import { SpikeLimiter, SpikeWaiter, realClock, type SpikeClock } from './limiter.js'
import { schema, order, type SpikeControlConfig } from './schema.js'

function noop(): void {}

/** Limiters by policy id (PolicyContext.id): survive reloads that keep the policy as is. */
const limiters = new Map<string, SpikeLimiter>()
/** Past this many, idle limiters of configs no longer loaded are forgotten on the next create. */
const MAX_LIMITERS = 256

let clock: SpikeClock = realClock
/** Tests only: drive limiters created from now on with a fake clock. */
export function setSpikeClock(c: SpikeClock | null): void {
  clock = c ?? realClock
  limiters.clear()
}

function limiterFor(id: string, config: SpikeControlConfig): SpikeLimiter {
  const found = limiters.get(id)
  if (found !== undefined) return found
  if (limiters.size >= MAX_LIMITERS) for (const [k, l] of limiters) if (l.waiting === 0) limiters.delete(k)
  const l = new SpikeLimiter({
    interval: config.timePeriodInMilliseconds / config.maximumRequests,
    burst: config.burst ?? 1,
    delay: config.delayTimeInMillis ?? 1000,
    attempts: config.delayAttempts ?? 1,
    queueLimit: config.queuingLimit ?? 5,
  }, clock)
  limiters.set(id, l)
  return l
}

/**
 * One delayed request. While it waits it is the Downstream's listener, so a client abort
 * reaches it (the request phase has no other listener; the upstream call takes the slot
 * over later).
 */
class QueuedRequest extends SpikeWaiter implements DownstreamListener {
  /** Set by the Promise executor right after enqueueing (before any timer can fire). */
  resolve: (r: RequestResult) => void = noop

  constructor(private readonly ex: Exchange, private readonly policy: SpikePolicy) {
    super()
  }

  admit(): void {
    this.ex.down.listener = null
    this.resolve(undefined)
  }

  reject(): void {
    this.ex.down.listener = null
    this.resolve(this.policy.tooMany(this.policy.exhausted))
  }

  onClientAbort(): void {
    this.policy.limiter.remove(this)
    // The exchange ends here: the answer below is never sent (the client is gone).
    this.ex.hooks.done(this.ex, 'client-abort')
    this.resolve(this.policy.exhausted)
  }

  onResponseDone(): void {}
  onBackpressure(): void {}
  onDrain(): void {}
}

/** What the per-request function needs, built once per policy instance. */
class SpikePolicy {
  readonly full: LocalResponse
  readonly exhausted: LocalResponse
  constructor(readonly limiter: SpikeLimiter, queuingLimit: number, attempts: number) {
    this.full = problem('GH_ERR_SPIKE_QUEUE_FULL', `spike control: ${queuingLimit} requests already waiting`)
    this.exhausted = problem('GH_ERR_SPIKE_QUEUE_FULL', `spike control: no capacity after ${attempts} delayed attempts`)
  }

  /** The prebuilt rejection with this moment's Retry-After. */
  tooMany(base: LocalResponse): LocalResponse {
    return { ...base, headers: ['retry-after', String(this.limiter.retryAfterSeconds())] }
  }
}

export const spikeControl: PolicyModule<SpikeControlConfig> = {
  name: 'spike-control',
  order,
  schema,
  create(config, ctx): PolicyHandlers {
    const limiter = limiterFor(ctx.id, config)
    const policy = new SpikePolicy(limiter, limiter.opts.queueLimit, limiter.opts.attempts)

    return {
      request: function spikeControlRequest(ex: Exchange): RequestResult | Promise<RequestResult> {
        // A client gone during an earlier async policy takes no token; forward() ends it.
        if (!ex.down.live || limiter.tryAdmit()) return undefined
        const w = new QueuedRequest(ex, policy)
        if (!limiter.enqueue(w)) return policy.tooMany(policy.full)
        ex.down.listener = w
        return new Promise<RequestResult>((resolve) => { w.resolve = resolve })
      },
      response: null,
    }
  },
}
