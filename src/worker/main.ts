/**
 * Worker entry (forked by the primary through node:cluster). Applies snapshots by
 * building a Runtime beside the current one and swapping one reference; opens and closes
 * only the listeners that changed; heartbeats so the primary can tell a hung worker; and
 * drains on request: close listen sockets, finish in-flight exchanges, exit.
 *
 * @module
 */
import * as channels from '../telemetry/channels.js'
import { isGhMessage, type ToPrimary, type SnapshotMsg } from '../ipc/protocol.js'
import type { ListenerSnap } from '../config/snapshot.js'
import { createLogger, reopenRuntimeLog, setRuntimeLogDirectory } from '../telemetry/runtime-log.js'
import { configureAccessLog, reopenAccessLog } from '../telemetry/access-log.js'
import { configureTracing, flushTracing } from '../telemetry/tracing.js'
import { configureWorkerMetrics, dumpWorkerMetrics, type WorkerMetricSources } from '../telemetry/metrics-worker.js'
import { drainSignal, responseBuffers } from './downstream.js'
import { configureSlowReaders, slowReaders } from './slow-readers.js'
import { makeRequestHandler, type WorkerState } from './handle-request.js'
import { OverloadGuard } from './overload.js'
import { buildRuntime, listenerKey } from './runtime.js'
import { UpstreamRegistry } from './upstream.js'
import type { WorkerServices } from './policies/types.js'
import { EmbeddedLeaseClient } from './leases/embedded.js'
import { WorkerLeaseClient } from './leases/client.js'
import { closeListener, listen, reopenListener, type Listener } from './uws.js'
import { ConnectionCap } from './connection-cap.js'

const log = createLogger('worker')
configureSlowReaders(log)
const upstreams = new UpstreamRegistry()
/** Worker-level services for policy factories (the rate-limit lease client joins here). */
// process.send returns false also when it only queued the message (backlog): that still
// arrives, so only a closed channel counts as not sent.
const embeddedLeases = new EmbeddedLeaseClient((m) => { if (!process.connected) return false; process.send!(m); return true })
const leases = new WorkerLeaseClient(embeddedLeases, log)
const services: WorkerServices = { leases }
const listeners = new Map<string, { listener: Listener; tlsKey: string }>()
let heartbeat: NodeJS.Timeout | null = null
let drainTimer: NodeJS.Timeout | null = null

const state: WorkerState = {
  runtime: null,
  draining: false,
  inFlight: 0,
  overload: new OverloadGuard(log),
  hooks: {
    done(ex, outcome) {
      if (ex.ended) return
      ex.ended = true
      ex.outcome = outcome
      if (channels.requestEnd.hasSubscribers) { ex.endedAt = performance.now(); channels.requestEnd.publish(ex) }
      state.inFlight--
      if (state.draining && state.inFlight === 0) finishDrain(0)
    },
  },
}

function pauseListeners(): void {
  for (const l of listeners.values()) closeListener(l.listener)
}

const connectionCap = new ConnectionCap({
  pause: pauseListeners,
  resume: async () => {
    if (state.draining) return
    for (const l of listeners.values()) await reopenListener(l.listener)
  },
  upstreamConnections: () => upstreams.connected(),
}, log)

/** What the metrics read at collect time (never on the request path). */
const metricSources: WorkerMetricSources = {
  slot: process.env.GATEHOUSE_WORKER_SLOT ?? '0',
  inFlight: () => state.inFlight,
  rateLimit: () => leases.snapshotCounters(),
  degraded: () => leases.degraded,
  shed: () => ({ ...state.overload.shed, slowReader: slowReaders.cut }),
  connections: () => connectionCap.connections(),
  connectionCapped: () => connectionCap.episodes,
}

function send(m: ToPrimary): void {
  if (process.connected) process.send!(m)
}

function tlsKey(l: ListenerSnap): string {
  return l.tls === null ? '' : JSON.stringify(l.tls)
}

// Snapshots apply one at a time, in arrival order: an apply awaits listen(), and two
// interleaved applies could bind the same port twice or let an older one win the swap.
let applying: Promise<void> = Promise.resolve()

function enqueueSnapshot(msg: SnapshotMsg): void {
  applying = applying.then(() => applySnapshot(msg))
}

async function applySnapshot(msg: SnapshotMsg): Promise<void> {
  const snap = msg.snapshot
  if (state.draining) {
    // Listeners are closed for good; applying would open them again.
    send({ type: 'gh:ack', requestId: msg.requestId, version: snap.version, ok: false, error: 'worker is draining' })
    return
  }
  let built: ReturnType<typeof buildRuntime> | null = null
  try {
    await leases.configure(snap.host.redis)
    built = buildRuntime(snap, upstreams, services)
    const rt = built.runtime
    // Open new listeners first, so a bind failure rejects the snapshot before anything changes.
    const wanted = new Map(snap.listeners.map((l) => [listenerKey(l), l]))
    const opened: string[] = []
    for (const [key, l] of wanted) {
      const cur = listeners.get(key)
      if (cur !== undefined && cur.tlsKey === tlsKey(l)) continue
      if (cur !== undefined) { closeListener(cur.listener); listeners.delete(key) }
      try {
        const listener = await listen(l.host, l.port, l.tls, makeRequestHandler(state, key))
        listeners.set(key, { listener, tlsKey: tlsKey(l) })
        opened.push(key)
        if (state.draining) throw new Error('worker is draining')
      } catch (err) {
        for (const k of opened) {
          const o = listeners.get(k)
          if (o !== undefined) { closeListener(o.listener); listeners.delete(k) }
        }
        throw err
      }
    }
    state.runtime = rt
    built.commit()
    for (const [key, l] of listeners) {
      if (!wanted.has(key)) { closeListener(l.listener); listeners.delete(key) }
    }
    log.setLevel(snap.host.logLevel)
    state.overload.configure(snap.host.overload)
    connectionCap.configure(snap.host.overload.maxConnections)
    // A listener this snapshot opened while the cap holds must not accept either.
    if (connectionCap.capped) pauseListeners()
    responseBuffers.perResponse = snap.host.limits.responseBufferBytes
    responseBuffers.limit = snap.host.limits.responseBufferTotalBytes
    configureWorkerMetrics(snap.host.metrics.enabled, metricSources)
    setRuntimeLogDirectory(snap.host.logDirectory)
    configureAccessLog(snap, log)
    configureTracing(snap.host.tracing, { log })
    startHeartbeat(snap.host.heartbeatIntervalMs)
    send({ type: 'gh:ack', requestId: msg.requestId, version: snap.version, ok: true })
  } catch (err) {
    built?.discard()
    log.error('GH_ERR_RELOAD_FAILED', `snapshot ${snap.version} not applied: ${(err as Error).message}`)
    send({ type: 'gh:ack', requestId: msg.requestId, version: snap.version, ok: false, error: (err as Error).message })
  }
}

function startHeartbeat(intervalMs: number): void {
  if (heartbeat !== null) clearInterval(heartbeat)
  const beat = (): void => send({
    type: 'gh:heartbeat',
    version: state.runtime?.version ?? null,
    inFlight: state.inFlight,
    degraded: leases.degraded ? ['shared storage'] : [],
    rateLimit: leases.snapshotCounters(),
  })
  heartbeat = setInterval(beat, intervalMs)
  beat()
}

function drain(timeoutMs: number): void {
  if (state.draining) return
  state.draining = true
  drainSignal.draining = true
  connectionCap.close()
  for (const l of listeners.values()) closeListener(l.listener)
  listeners.clear()
  if (state.inFlight === 0) { finishDrain(0); return }
  drainTimer = setTimeout(() => finishDrain(state.inFlight), timeoutMs)
}

function finishDrain(abandoned: number): void {
  if (drainTimer !== null) clearTimeout(drainTimer)
  if (heartbeat !== null) clearInterval(heartbeat)
  send({ type: 'gh:drained', abandoned })
  if (abandoned > 0) log.warn('GH_WRN_DRAIN_TIMEOUT', `${abandoned} requests still in flight at the drain deadline`)
  upstreams.closeAll().catch(() => {})
  leases.close()
  // Give the IPC message and the last spans a moment to leave (at most 1 s for spans),
  // then go; open keep-alive sockets die with us.
  const exit = (): never => process.exit(0)
  setTimeout(exit, 1000).unref()
  void Promise.all([flushTracing(), new Promise((r) => setTimeout(r, 50))]).then(exit, exit)
}

process.on('message', (m: unknown) => {
  if (!isGhMessage(m)) return
  switch (m.type) {
    case 'gh:snapshot': enqueueSnapshot(m); break
    case 'gh:drain': drain(m.timeoutMs); break
    case 'gh:reopen-logs': reopenLogs(); break
    case 'gh:grant': embeddedLeases.onGrant(m); break
    case 'gh:collect':
      dumpWorkerMetrics().then((metrics) => send({ type: 'gh:metrics', requestId: m.requestId, metrics }),
        (err: Error) => { log.error('GH_ERR_INTERNAL', `metrics dump failed: ${err.message}`); send({ type: 'gh:metrics', requestId: m.requestId, metrics: [] }) })
      break
  }
})

// SIGTERM/SIGINT go to the whole process group from a terminal or systemd; the primary
// decides when a worker stops, so a worker only drains on its own when orphaned.
process.on('SIGTERM', () => {})
// logrotate: the primary forwards its SIGUSR1 as 'gh:reopen-logs'; `systemctl kill -s USR1`
// reaches every process of the unit, so a worker also handles the signal itself (a second
// reopen is harmless). The handler also keeps Node from starting its inspector on SIGUSR1.
process.on('SIGUSR1', reopenLogs)
process.on('SIGINT', () => {})
process.on('disconnect', () => drain(5000))
send({ type: 'gh:hello', pid: process.pid })

process.on('uncaughtException', (err) => {
  log.error('GH_ERR_INTERNAL', `uncaught exception: ${err.stack ?? err.message}`)
  process.exit(70)
})

function reopenLogs(): void {
  reopenRuntimeLog()
  reopenAccessLog()
}
