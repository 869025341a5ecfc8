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
import { isGhMessage, newRequestId, type AckMsg, type HeartbeatMsg, type ToWorker } from '../ipc/protocol.js'
import { EmbeddedLeaseStore } from './lease-store.js'
import type { Logger } from '../telemetry/runtime-log.js'
import { pinToCpu } from './cpu-affinity.js'

const WORKER_ENTRY = fileURLToPath(new URL('../worker/main.js', import.meta.url))
const ACK_TIMEOUT_MS = 15_000
/** A forked worker that has not said hello by then is wedged in start-up: kill it. */
const HELLO_TIMEOUT_MS = 30_000
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
  degraded: string[]
  rateLimit: HeartbeatMsg['rateLimit'] | null
}

interface PendingAck {
  resolve(ok: Ack): void
  timer: NodeJS.Timeout
}

/**
 * An ack as the supervisor sees it. `gone` marks a worker that exited (or was never
 * connected) before answering: that is a crash for onExit to handle, not a rejection of
 * the snapshot, so it must not roll a reload back.
 */
type Ack = AckMsg & { gone?: true }

class WorkerSlot {
  worker: Worker | null = null
  state: 'starting' | 'ready' | 'failed' | 'backoff' | 'stopping' | 'stopped' = 'stopped'
  restarts = 0
  backoffStep = 0
  /** The worker said gh:hello, so it listens for IPC (a gh:drain will reach it). */
  helloed = false
  startedAt = 0
  lastHeartbeat = 0
  version: string | null = null
  inFlight = 0
  pinned = false
  pending = new Map<number, PendingAck>()
  /** What the worker reported serving without (e.g. "shared storage"). */
  degraded: string[] = []
  rateLimit: HeartbeatMsg['rateLimit'] | null = null
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
  /** The embedded rate-limit store every worker of this host shares. */
  private readonly leases = new EmbeddedLeaseStore()
  private stopping = false
  private monitor: NodeJS.Timeout | null = null
  private heartbeatIntervalMs: number
  private heartbeatMisses: number

  constructor(private readonly opts: SupervisorOptions) {
    this.slots = Array.from({ length: opts.workers }, (_, i) => new WorkerSlot(i, opts.cpus[i % opts.cpus.length]!))
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs
    this.heartbeatMisses = opts.heartbeatMisses
    cluster.setupPrimary({ exec: WORKER_ENTRY })
  }

  get currentSnapshot(): Snapshot | null { return this.snapshot }

  /** Forks every worker with `snapshot` and resolves once all of them acked it. */
  async start(snapshot: Snapshot): Promise<boolean> {
    this.snapshot = snapshot
    this.startMonitor()
    const acks = await Promise.all(this.slots.map((s) => this.spawn(s)))
    return acks.every(Boolean)
  }

  private startMonitor(): void {
    if (this.monitor !== null) clearInterval(this.monitor)
    this.monitor = setInterval(() => this.checkHeartbeats(), this.heartbeatIntervalMs)
    this.monitor.unref()
  }

  /**
   * Sends a new snapshot to every live worker and waits for all acks. If any worker
   * rejects it, the previous snapshot is sent back to all, so the host never serves two
   * versions at once for longer than the rollback takes.
   */
  async apply(next: Snapshot): Promise<{ ok: true } | { ok: false; error: string }> {
    if (this.stopping) return { ok: false, error: 'the gateway is stopping' }
    const prev = this.snapshot
    // Set first: a worker that is starting (or restarting) right now picks the newest
    // snapshot up when it acks the one it was given (see spawn).
    this.snapshot = next
    const live = this.slots.filter((s) => s.worker !== null && s.state === 'ready')
    const acks = await Promise.all(live.map((s) => this.request(s, next)))
    // A worker that died meanwhile did not reject anything; its replacement gets `next`.
    const failed = acks.find((a) => !a.ok && a.gone !== true)
    if (failed === undefined) {
      if (this.stopping) return { ok: false, error: 'the gateway is stopping' }
      this.applyHeartbeat(next)
      return { ok: true }
    }
    this.snapshot = prev
    if (prev !== null) await Promise.all(live.map((s) => this.request(s, prev)))
    return { ok: false, error: failed.error ?? 'worker rejected the snapshot' }
  }

  /**
   * Heartbeat settings follow the config: every worker restarted its beat at the new
   * interval when it acked, so judging it by the old (shorter) limit would kill healthy
   * workers after a reload that lengthened the interval.
   */
  private applyHeartbeat(snap: Snapshot): void {
    const { heartbeatIntervalMs: every, heartbeatMisses: misses } = snap.host
    if (every === this.heartbeatIntervalMs && misses === this.heartbeatMisses) return
    this.heartbeatIntervalMs = every
    this.heartbeatMisses = misses
    const now = Date.now()
    for (const s of this.slots) if (s.worker !== null) s.lastHeartbeat = Math.max(s.lastHeartbeat, now)
    this.startMonitor()
  }

  /** Every slot has a worker serving the current snapshot. */
  allReady(): boolean {
    const v = this.snapshot?.version
    return v !== undefined && this.slots.every((s) => s.state === 'ready' && s.version === v)
  }

  /**
   * The host serves traffic: at least one worker is ready and heartbeating. The systemd
   * watchdog is petted only while this holds. Requiring *every* worker would let one
   * crash-looping worker (in backoff up to BACKOFF_MAX_MS) get the whole service killed,
   * although the supervisor is already replacing it and the others serve.
   */
  healthy(): boolean {
    const limit = this.heartbeatIntervalMs * this.heartbeatMisses
    const now = Date.now()
    return this.slots.some((s) => s.state === 'ready' && now - s.lastHeartbeat <= limit)
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
      degraded: s.degraded,
      rateLimit: s.rateLimit,
    }))
  }

  /** Dependencies some worker serves without right now (deduplicated). */
  degraded(): string[] {
    const out = new Set<string>()
    for (const s of this.slots) if (s.worker !== null) for (const d of s.degraded) out.add(d)
    return [...out]
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
        if (w.process.exitCode !== null || w.process.signalCode !== null) { resolve(); return }
        let kill: NodeJS.Timeout | undefined
        w.once('exit', () => { clearTimeout(kill); resolve() })
        // A worker that has not said hello serves nothing and may not hear gh:drain yet.
        if (!s.helloed || !w.isConnected()) { w.process.kill('SIGKILL'); return }
        kill = setTimeout(() => { w.process.kill('SIGKILL') }, drainTimeoutMs + 5000)
        this.send(w, { type: 'gh:drain', timeoutMs: drainTimeoutMs })
      }))
    }
    await Promise.all(exits)
  }

  private send(w: Worker, m: ToWorker): void {
    // A worker can die between the check and the write (a reload racing a crash); the
    // failed send then reports to the callback instead of crashing the primary. The
    // request it belonged to settles through the worker's exit or its own timeout.
    if (w.isConnected()) w.send(m, undefined, () => {})
  }

  private request(s: WorkerSlot, snapshot: Snapshot): Promise<Ack> {
    const w = s.worker
    const requestId = newRequestId()
    const fail = (error: string): Ack => ({ type: 'gh:ack', requestId, version: snapshot.version, ok: false, error })
    if (w === null || !w.isConnected()) return Promise.resolve({ ...fail('worker not connected'), gone: true })
    return new Promise<Ack>((resolve) => {
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
    s.helloed = false
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
          s.helloed = true
          w.emit('gh:hello')
          return
        case 'gh:heartbeat':
          s.lastHeartbeat = Date.now()
          s.inFlight = m.inFlight
          s.degraded = m.degraded ?? []
          if (m.rateLimit !== undefined) s.rateLimit = m.rateLimit
          return
        case 'gh:release':
          this.leases.release(m.key, m.window, m.count)
          return
        case 'gh:lease': {
          const g = this.leases.acquire(m)
          this.send(w, { type: 'gh:grant', requestId: m.requestId, granted: g.granted, window: g.window, resetMs: g.resetMs, remaining: g.remaining })
          return
        }
        case 'gh:drained':
          if (m.abandoned > 0) this.opts.log.warn('GH_WRN_DRAIN_TIMEOUT', `worker ${pid} exited with ${m.abandoned} requests in flight`)
          return
      }
    })
    w.on('exit', (code, signal) => this.onExit(s, w, code, signal))
    // An IPC write to a worker that just died is reported here; without a listener the
    // 'error' event would take the primary down with it.
    w.on('error', (err: Error) => this.opts.log.warn('GH_WRN_WORKER_IPC', `worker ${pid}: ${err.message}`))
    return new Promise<boolean>((resolve) => {
      const helloTimer = setTimeout(() => {
        if (s.worker !== w || s.helloed) return
        this.opts.log.error('GH_ERR_WORKER_START', `worker ${pid} (slot ${s.index}) did not start within ${HELLO_TIMEOUT_MS} ms; replacing it`)
        w.process.kill('SIGKILL')
      }, HELLO_TIMEOUT_MS)
      helloTimer.unref()
      w.once('gh:hello', () => {
        clearTimeout(helloTimer)
        void this.catchUp(s, w).then((ack) => {
          if (s.worker !== w || this.stopping) { resolve(false); return }
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
      w.once('exit', () => { clearTimeout(helloTimer); resolve(false) })
    })
  }

  /**
   * Sends the current snapshot until the worker acks the one that is current when the
   * ack arrives: a reload (or a rollback) that ran while this worker was starting only
   * reached the ready workers, so a (re)started worker must not settle on an older one.
   */
  private async catchUp(s: WorkerSlot, w: Worker): Promise<Ack> {
    for (;;) {
      const snap = this.snapshot!
      const ack = await this.request(s, snap)
      if (!ack.ok || s.worker !== w || this.stopping || this.snapshot === null || this.snapshot.version === ack.version) return ack
    }
  }

  private onExit(s: WorkerSlot, w: Worker, code: number | null, signal: string | null): void {
    if (s.worker !== w) return
    for (const p of s.pending.values()) clearTimeout(p.timer)
    for (const [id, p] of s.pending) p.resolve({ type: 'gh:ack', requestId: id, version: '', ok: false, error: 'worker exited', gone: true })
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
    const limit = this.heartbeatIntervalMs * this.heartbeatMisses
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
