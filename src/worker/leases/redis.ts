/**
 * The Redis lease store: one atomic Lua script per grant (EVALSHA through ioredis's
 * defineCommand, which falls back to EVAL once when the script cache was flushed), auto
 * pipelined by ioredis so concurrent grants share round trips.
 *
 * The script reads the store's clock (`TIME`), so every host agrees on window
 * boundaries whatever its own clock says. It builds the window's key from KEYS[1] plus
 * the window index; that key is not declared in KEYS, so this works with one Redis (or a
 * Sentinel-managed primary), not Redis Cluster.
 *
 * Failure handling (no request may hang on Redis): no offline queue (commands fail at once
 * while disconnected), a command timeout, no retries of a failed command, reconnect with
 * a short backoff, and a circuit breaker in front.
 *
 * @module
 */
import { Redis, type RedisOptions } from 'ioredis'
import type { RedisSnap } from '../../config/snapshot.js'
import { GRANT_DIVISOR, type LeaseGrant, type LeaseRequest, type LeaseStore } from '../../ratelimit/lease.js'
import { CircuitBreaker } from './breaker.js'

/** Mirrors grantSize() in src/ratelimit/lease.ts; keep the two in step. */
const GRANT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local windowMs = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local divisor = tonumber(ARGV[4])
local need = tonumber(ARGV[5])
local win = math.floor(now / windowMs)
local key = KEYS[1] .. ':' .. win
local used = tonumber(redis.call('GET', key) or '0')
local remaining = limit - used
local grant = 0
if remaining > 0 and want > 0 then
  grant = math.max(1, math.floor(remaining / divisor))
  if grant > want then grant = want end
  if grant < need then grant = need end
  if grant > remaining then grant = remaining end
  local after = redis.call('INCRBY', key, grant)
  if after == grant then redis.call('PEXPIRE', key, windowMs + 1000) end
end
return { grant, win, (win + 1) * windowMs - now, remaining - grant }
`

/** Gives unspent tokens back to a window that still exists (never below zero). */
const RELEASE_SCRIPT = `
local key = KEYS[1] .. ':' .. ARGV[1]
local used = tonumber(redis.call('GET', key) or '0')
local n = math.min(tonumber(ARGV[2]), used)
if n > 0 then redis.call('DECRBY', key, n) end
return n
`

type GrantReply = [number, number, number, number]
interface LeaseRedis extends Redis {
  ghLease(key: string, limit: number, windowMs: number, want: number, divisor: number, need: number): Promise<GrantReply>
  ghRelease(key: string, window: number, count: number): Promise<number>
}

export function redisOptions(r: RedisSnap): RedisOptions {
  const base: RedisOptions = {
    username: r.username ?? undefined,
    password: r.password ?? undefined,
    db: r.db,
    tls: r.tls ? {} : undefined,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: r.commandTimeoutMs,
    connectTimeout: Math.max(1000, r.commandTimeoutMs * 4),
    // Reconnect quickly at first, then every second: exactness should return soon after Redis does.
    retryStrategy: (times: number) => Math.min(50 * times, 1000),
    lazyConnect: false,
  }
  if (r.sentinelName !== null) {
    return { ...base, sentinels: r.hosts.map(([host, port]) => ({ host, port })), name: r.sentinelName, sentinelPassword: r.sentinelPassword ?? undefined }
  }
  const [host, port] = r.hosts[0]!
  return { ...base, host, port }
}

export class RedisLeaseStore implements LeaseStore {
  readonly name = 'redis' as const
  private readonly redis: LeaseRedis
  readonly breaker: CircuitBreaker
  calls = 0
  errors = 0

  constructor(readonly config: RedisSnap, onState: (up: boolean, why: string) => void) {
    this.breaker = new CircuitBreaker(3, 500, (open) => {
      onState(!open, open ? this.lastError : 'answering again')
      if (open) this.startProbing()
    })
    this.redis = new Redis(redisOptions(config)) as LeaseRedis
    this.redis.defineCommand('ghLease', { numberOfKeys: 1, lua: GRANT_SCRIPT })
    this.redis.defineCommand('ghRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT })
    // ioredis reports connection trouble as 'error' events; without a listener they would crash the worker.
    this.redis.on('error', (err: Error) => { this.lastError = err.message })
  }

  private lastError = 'unreachable'

  /** Resolves when the connection is ready, or after `waitMs`, whichever comes first. */
  ready(waitMs: number): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve()
    return new Promise((resolve) => {
      const t = setTimeout(done, waitMs)
      const r = this.redis
      function done(): void { clearTimeout(t); r.off('ready', done); resolve() }
      r.once('ready', done)
    })
  }

  /** True while the breaker is open: callers go to their fallback without trying. */
  get unavailable(): boolean { return this.breaker.open }

  /** Rejects with code GH_LEASE_BREAKER_OPEN without a call while the breaker is open. */
  acquire(req: LeaseRequest): Promise<LeaseGrant> {
    const now = Date.now()
    if (!this.breaker.allow(now)) return Promise.reject(Object.assign(new Error('shared storage unavailable'), { code: 'GH_LEASE_BREAKER_OPEN' }))
    this.calls++
    return this.redis.ghLease(req.key, req.limit, req.windowMs, req.want, GRANT_DIVISOR, req.need).then((r) => {
      this.breaker.success()
      return { granted: Number(r[0]), window: Number(r[1]), resetMs: Number(r[2]), remaining: Number(r[3]) }
    }, (err: Error) => {
      this.errors++
      this.lastError = err.message
      this.breaker.failure(Date.now())
      throw err
    })
  }

  release(key: string, window: number, count: number): void {
    if (this.breaker.open) return
    this.calls++
    this.redis.ghRelease(key, window, count).catch(() => { this.errors++ })
  }

  /**
   * While the breaker is open, PING Redis in the background whenever the breaker allows a
   * probe, so it closes (and /ready recovers) when Redis is back even if no request
   * comes to try it.
   */
  private startProbing(): void {
    if (this.probeTimer !== null) return
    this.probeTimer = setInterval(() => {
      if (!this.breaker.open) { clearInterval(this.probeTimer!); this.probeTimer = null; return }
      if (!this.breaker.allow(Date.now())) return
      this.redis.ping().then(() => this.breaker.success(), () => this.breaker.failure(Date.now()))
    }, 250)
    this.probeTimer.unref()
  }

  private probeTimer: NodeJS.Timeout | null = null

  reportSlow(): void {
    this.lastError = 'no answer within maxWaitMs'
    this.breaker.failure(Date.now())
  }

  close(): void {
    if (this.probeTimer !== null) clearInterval(this.probeTimer)
    this.redis.disconnect()
  }
}
