/**
 * The worker's lease client: Redis as the shared store when the config names one, the
 * primary's embedded store otherwise and as the `local` fallback. Rebuilt only when the
 * Redis settings change across reloads, so leases and connections survive other reloads.
 *
 * @module
 */
import type { RedisSnap } from '../../config/snapshot.js'
import type { LeaseClient, LeaseStore } from '../../ratelimit/lease.js'
import type { Logger } from '../../telemetry/runtime-log.js'
import type { EmbeddedLeaseClient } from './embedded.js'
import { RedisLeaseStore } from './redis.js'

/** Counters reported in heartbeats (the metrics work turns them into Prometheus series). */
export interface RateLimitCounters {
  storeCalls: number
  storeErrors: number
  fallbacks: number
  admitted: number
  limited: number
}

export class WorkerLeaseClient implements LeaseClient {
  private redis: RedisLeaseStore | null = null
  private redisKey = ''
  readonly counters: RateLimitCounters = { storeCalls: 0, storeErrors: 0, fallbacks: 0, admitted: 0, limited: 0 }

  constructor(readonly local: EmbeddedLeaseClient, private readonly log: Logger) {}

  get shared(): LeaseStore { return this.redis ?? this.local }

  get degraded(): boolean { return this.redis !== null && this.redis.unavailable }

  /**
   * Applies the Redis settings of a snapshot. Resolves once a new connection is ready, or
   * after `waitMs` (Redis down at start must not keep the worker from serving): the worker
   * acks the snapshot after this, so the first requests find the store connected instead
   * of falling back.
   */
  configure(redis: RedisSnap | null, waitMs = 1000): Promise<void> {
    const key = redis === null ? '' : JSON.stringify(redis)
    if (key === this.redisKey) return Promise.resolve()
    this.redis?.close()
    this.redisKey = key
    this.redis = redis === null ? null : new RedisLeaseStore(redis, (up, why) => {
      if (up) this.log.info('GH_RATE_LIMIT_STORE_UP', `shared storage (Redis) ${why}; exact shared limits again`)
      else this.log.error('GH_ERR_RATE_LIMIT_STORE', `shared storage (Redis) unavailable (${why}); rate limits follow onStoreFailure`)
    })
    return this.redis === null ? Promise.resolve() : this.redis.ready(waitMs)
  }

  /** For heartbeats: calls and errors of the shared store plus the policy counters. */
  snapshotCounters(): RateLimitCounters {
    return {
      ...this.counters,
      storeCalls: this.counters.storeCalls + (this.redis?.calls ?? 0),
      storeErrors: this.counters.storeErrors + (this.redis?.errors ?? 0),
    }
  }

  close(): void {
    this.redis?.close()
    this.redis = null
  }
}
