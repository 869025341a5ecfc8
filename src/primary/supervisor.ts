/**
 * Worker supervision: fork N workers through node:cluster, pin slot i to CPU i of the
 * allowed set, hand each the current snapshot, restart crashed workers with exponential
 * backoff, replace hung ones (missed heartbeats), and drain them on stop.
 *
 * IPC requests (snapshot → ack) carry request ids, time out, and settle once
 * (prom-client's lib/cluster.js pattern). The primary never proxies.
 *
 * @module
 */
import cluster, { type Worker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import type { Snapshot } from '../config/snapshot.js'
import { isGhMessage, newRequestId, type AckMsg, type ToWorker } from '../ipc/protocol.js'
import type { Logger } from '../telemetry/runtime-log.js'
import { pinToCpu } from './cpu-affinity.js'

const WORKER_ENTRY = fileURLToPath(new URL('../worker/main.js', import.meta.url))
const ACK_TIMEOUT_MS = 15_000
const BACKOFF_BASE_MS = 100
const BACKOFF_MAX_MS = 10_000
/** A worker that stayed up this long resets its slot's backoff. */
const STABLE_AFTER_MS = 30_000

export interface SlotStatus {
  slot: number
  pid: number | null
  cpu: number
  pinned: boolean
  restarts: number
  version: string | null
  uptimeMs: number
  inFlight: number
  lastHeartbeatMsAgo: number | null
  state: WorkerSlot['state']
}

interface PendingAck {
  resolve(ok: AckMsg): void
  timer: NodeJS.Timeout
}

class WorkerSlot {
  worker: Worker | null = null
  state: 'starting' | 'ready' | 'failed' | 'backoff' | 'stopping' | 'stopped' = 'stopped'
  restarts = 0
  backoffStep = 0
  startedAt = 0
  lastHeartbeat = 0
  version: string | null = null
  inFlight = 0
  pinned = false
  pending = new Map<number, PendingAck>()
  restartTimer: NodeJS.Timeout | null = null
  constructor(readonly index: number, readonly cpu: number) {}
}

export interface SupervisorOptions {
  workers: number
  cpus: number[]
  heartbeatIntervalMs: number
  heartbeatMisses: number
  log: Logger
  /** Called when the set of ready workers changes (readiness, watchdog, STATUS=). */
  onChange(): void
}

export class Supervisor {
  private slots: WorkerSlot[]
  private snapshot: Snapshot | null = null
  private stopping = false
  private monitor: NodeJS.Timeout | null = null

  constructor(private readonly opts: SupervisorOptions) {
    this.slots = Array.from({ length: opts.workers }, (_, i) => new WorkerSlot(i, opts.cpus[i % opts.cpus.length]!))
    cluster.setupPrimary({ exec: WORKER_ENTRY })
  }

  get currentSnapshot(): Snapshot | null { return this.snapshot }

  /** Forks every worker with `snapshot` and resolves once all of them acked it. */
  async start(snapshot: Snapshot): Promise<boolean> {
    this.snapshot = snapshot
    const acks = await Promise.all(this.slots.map((s) => this.spawn(s)))
    this.monitor = setInterval(() => this.checkHeartbeats(), this.opts.heartbeatIntervalMs)
    this.monitor.unref()
    return acks.every(Boolean)
  }

  /**
   * Sends a new snapshot to every live worker and waits for all acks. If any worker
   * rejects it, the previous snapshot is sent back to all, so the host never serves two
   * versions at once for longer than the rollback takes.
   */
  async apply(next: Snapshot): Promise<{ ok: true } | { ok: false; error: string }> {
    const prev = this.snapshot
    this.snapshot = next
    const live = this.slots.filter((s) => s.worker !== null && s.state === 'ready')
    const acks = await Promise.all(live.map((s) => this.request(s, next)))
    const failed = acks.find((a) => !a.ok)
    if (failed === undefined) return { ok: true }
    this.snapshot = prev
    if (prev !== null) await Promise.all(live.map((s) => this.request(s, prev)))
    return { ok: false, error: failed.error ?? 'worker rejected the snapshot' }
  }

  /** Every slot has a worker serving the current snapshot. */
  allReady(): boolean {
    const v = this.snapshot?.version
    return v !== undefined && this.slots.every((s) => s.state === 'ready' && s.version === v)
  }

  /** Every worker has sent a heartbeat recently (the watchdog only pets while this holds). */
  healthy(): boolean {
    const limit = this.opts.heartbeatIntervalMs * this.opts.heartbeatMisses
    const now = Date.now()
    return this.slots.every((s) => s.state === 'ready' && now - s.lastHeartbeat <= limit)
  }

  status(): SlotStatus[] {
    const now = Date.now()
    return this.slots.map((s) => ({
      slot: s.index,
      pid: s.worker?.process.pid ?? null,
      cpu: s.cpu,
      pinned: s.pinned,
      restarts: s.restarts,
      version: s.version,
      uptimeMs: s.worker === null ? 0 : now - s.startedAt,
      inFlight: s.inFlight,
      lastHeartbeatMsAgo: s.lastHeartbeat === 0 ? null : now - s.lastHeartbeat,
      state: s.state,
    }))
  }

  readyCount(): number {
    return this.slots.filter((s) => s.state === 'ready').length
  }

  /** Drains every worker: they close their listeners, finish in-flight requests, exit. */
  async stop(drainTimeoutMs: number): Promise<void> {
    this.stopping = true
    if (this.monitor !== null) clearInterval(this.monitor)
    const exits: Promise<void>[] = []
    for (const s of this.slots) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer)
      const w = s.worker
      if (w === null) continue
      s.state = 'stopping'
      exits.push(new Promise<void>((resolve) => {
        const kill = setTimeout(() => { w.process.kill('SIGKILL') }, drainTimeoutMs + 5000)
        w.once('exit', () => { clearTimeout(kill); resolve() })
        this.send(w, { type: 'gh:drain', timeoutMs: drainTimeoutMs })
      }))
    }
    await Promise.all(exits)
  }

  private send(w: Worker, m: ToWorker): void {
    if (w.isConnected()) w.send(m)
  }

  private request(s: WorkerSlot, snapshot: Snapshot): Promise<AckMsg> {
    const w = s.worker
    const requestId = newRequestId()
    const fail = (error: string): AckMsg => ({ type: 'gh:ack', requestId, version: snapshot.version, ok: false, error })
    if (w === null || !w.isConnected()) return Promise.resolve(fail('worker not connected'))
    return new Promise<AckMsg>((resolve) => {
      const timer = setTimeout(() => {
        s.pending.delete(requestId)
        resolve(fail(`worker ${w.process.pid} did not ack within ${ACK_TIMEOUT_MS} ms`))
      }, ACK_TIMEOUT_MS)
      s.pending.set(requestId, { resolve, timer })
      this.send(w, { type: 'gh:snapshot', requestId, snapshot })
    })
  }

  private spawn(s: WorkerSlot): Promise<boolean> {
    const env: Record<string, string> = { GATEHOUSE_WORKER_SLOT: String(s.index) }
    // Only the primary talks to systemd (NotifyAccess=main).
    const w = cluster.fork({ ...env, NOTIFY_SOCKET: '' })
    s.worker = w
    s.state = 'starting'
    s.startedAt = Date.now()
    s.lastHeartbeat = Date.now()
    s.version = null
    s.pinned = false
    const pid = w.process.pid!
    void pinToCpu(pid, s.cpu).then((r) => {
      if (r.ok) s.pinned = true
      else this.opts.log.warn('GH_WRN_CPU_PIN', `worker ${pid} not pinned to CPU ${s.cpu}: ${r.reason}`)
    })
    w.on('message', (m: unknown) => {
      if (!isGhMessage(m) || s.worker !== w) return
      switch (m.type) {
        case 'gh:ack': {
          const p = s.pending.get(m.requestId)
          if (p === undefined) return
          s.pending.delete(m.requestId)
          clearTimeout(p.timer)
          if (m.ok) s.version = m.version
          p.resolve(m)
          return
        }
        case 'gh:hello':
          w.emit('gh:hello')
          return
        case 'gh:heartbeat':
          s.lastHeartbeat = Date.now()
          s.inFlight = m.inFlight
          return
        case 'gh:drained':
          if (m.abandoned > 0) this.opts.log.warn('GH_WRN_DRAIN_TIMEOUT', `worker ${pid} exited with ${m.abandoned} requests in flight`)
          return
      }
    })
    w.on('exit', (code, signal) => this.onExit(s, w, code, signal))
    const snap = this.snapshot!
    return new Promise<boolean>((resolve) => {
      w.once('gh:hello', () => {
        void this.request(s, snap).then((ack) => {
          if (s.worker !== w) { resolve(false); return }
          if (ack.ok) {
            s.state = 'ready'
            this.opts.log.info('GH_WORKER_READY', `worker ${pid} (slot ${s.index}, cpu ${s.cpu}) serving ${ack.version}`)
          } else {
            s.state = 'failed'
            this.opts.log.error('GH_ERR_WORKER_START', `worker ${pid} rejected snapshot: ${ack.error}`)
            w.process.kill('SIGKILL')
          }
          this.opts.onChange()
          resolve(ack.ok)
        })
      })
      w.once('exit', () => resolve(false))
    })
  }

  private onExit(s: WorkerSlot, w: Worker, code: number | null, signal: string | null): void {
    if (s.worker !== w) return
    for (const p of s.pending.values()) clearTimeout(p.timer)
    for (const [id, p] of s.pending) p.resolve({ type: 'gh:ack', requestId: id, version: '', ok: false, error: 'worker exited' })
    s.pending.clear()
    s.worker = null
    if (this.stopping) { s.state = 'stopped'; this.opts.onChange(); return }
    const uptime = Date.now() - s.startedAt
    if (uptime > STABLE_AFTER_MS) s.backoffStep = 0
    const delay = Math.min(BACKOFF_BASE_MS * 2 ** s.backoffStep, BACKOFF_MAX_MS)
    s.backoffStep++
    s.restarts++
    s.state = 'backoff'
    this.opts.log.error('GH_ERR_WORKER_EXIT', `worker ${w.process.pid} (slot ${s.index}) exited (code ${code}, signal ${signal}); restarting in ${delay} ms`)
    this.opts.onChange()
    s.restartTimer = setTimeout(() => {
      s.restartTimer = null
      if (!this.stopping) void this.spawn(s)
    }, delay)
  }

  /** A worker that misses heartbeats is hung (or SIGSTOPped): kill it; onExit replaces it. */
  private checkHeartbeats(): void {
    const limit = this.opts.heartbeatIntervalMs * this.opts.heartbeatMisses
    const now = Date.now()
    for (const s of this.slots) {
      const w = s.worker
      if (w === null || s.state !== 'ready') continue
      if (now - s.lastHeartbeat > limit) {
        this.opts.log.error('GH_ERR_WORKER_HUNG', `worker ${w.process.pid} (slot ${s.index}) missed heartbeats for ${now - s.lastHeartbeat} ms; replacing it`)
        s.state = 'failed'
        w.process.kill('SIGKILL')
      }
    }
  }
}
