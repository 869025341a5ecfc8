/**
 * Worker side of the embedded store: lease requests to the primary over IPC, with
 * request ids and settle-once replies (prom-client's cluster pattern). A request that
 * gets no answer within `timeoutMs` rejects, so nothing waits on a hung primary.
 *
 * @module
 */
import { newRequestId, type GrantMsg, type ToPrimary } from '../../ipc/protocol.js'
import type { LeaseGrant, LeaseRequest, LeaseStore } from '../../ratelimit/lease.js'

interface Pending {
  resolve(g: LeaseGrant): void
  reject(e: Error): void
  timer: NodeJS.Timeout
}

export class EmbeddedLeaseClient implements LeaseStore {
  readonly name = 'embedded' as const
  private pending = new Map<number, Pending>()

  constructor(private readonly send: (m: ToPrimary) => boolean, private readonly timeoutMs = 1000) {}

  acquire(req: LeaseRequest): Promise<LeaseGrant> {
    return new Promise((resolve, reject) => {
      const requestId = newRequestId()
      const timer = setTimeout(() => {
        this.pending.delete(requestId)
        reject(Object.assign(new Error('embedded store did not answer'), { code: 'GH_LEASE_TIMEOUT' }))
      }, this.timeoutMs)
      this.pending.set(requestId, { resolve, reject, timer })
      if (!this.send({ type: 'gh:lease', requestId, key: req.key, limit: req.limit, windowMs: req.windowMs, want: req.want, need: req.need })) {
        clearTimeout(timer)
        this.pending.delete(requestId)
        reject(Object.assign(new Error('no channel to the primary'), { code: 'GH_LEASE_NO_CHANNEL' }))
      }
    })
  }

  release(key: string, window: number, count: number): void {
    this.send({ type: 'gh:release', key, window, count })
  }

  /** The embedded store has no breaker: the primary answering slowly is not a store outage. */
  reportSlow(): void {}

  /** Routes a gh:grant from the primary to its request (late or unknown ones are dropped). */
  onGrant(m: GrantMsg): void {
    const p = this.pending.get(m.requestId)
    if (p === undefined) return
    this.pending.delete(m.requestId)
    clearTimeout(p.timer)
    p.resolve({ granted: m.granted, window: m.window, resetMs: m.resetMs, remaining: m.remaining })
  }
}
