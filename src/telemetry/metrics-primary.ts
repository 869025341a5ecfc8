/**
 * Primary-side metrics: its own registry (config reloads and version, worker restarts and
 * readiness, build info, its Node process metrics) and the scrape, which collects every
 * ready worker's registry over IPC and merges them (metrics.ts).
 *
 * The collection follows prom-client's lib/cluster.js (requests with ids, settle once,
 * idempotent listener set-up) with two differences that keep a scrape bounded: each
 * worker is asked separately with its own deadline, and a worker that does not answer in
 * time (hung, SIGSTOPped, restarting) is left out of this scrape instead of failing it.
 * `gatehouse_scrape_workers{result}` says how many answered. Only workers the supervisor
 * reports `ready` are asked: one still starting may not listen for IPC yet.
 *
 * A restarted worker starts its counters from zero, so summed counters can go down after
 * a crash; Prometheus' rate() treats that as a counter reset (prom-client's cluster mode
 * has the same property).
 *
 * @module
 * @example
 * const m = new PrimaryMetrics({ configVersion: () => v, workers: () => supervisor.status() })
 * m.recordReload('success')
 * const text = await m.scrape()
 */
import cluster from 'node:cluster'
import fs from 'node:fs'
import http from 'node:http'
import { Counter, Gauge, Registry } from 'prom-client'
import { isGhMessage, newRequestId, type ToWorker } from '../ipc/protocol.js'
import { CONTENT_TYPE, PREFIX, dumpRegistry, mergeRegistries, registerProcessMetrics, type MetricDump } from './metrics.js'

/** Per worker; well inside Prometheus' default 10 s scrape timeout. */
export const COLLECT_TIMEOUT_MS = 2000

export type ReloadResultLabel = 'success' | 'unchanged' | 'invalid' | 'failed'

export interface PrimaryMetricSources {
  configVersion(): string | null
  workers(): ReadonlyArray<{ pid: number | null; state: string; restarts: number }>
}

interface Pending {
  resolve(dump: MetricDump | null): void
  timer: NodeJS.Timeout
}

const pending = new Map<number, Pending>()
let listening = false

/** Idempotent: one cluster-wide listener settles the pending collections by request id. */
function listen(): void {
  if (listening) return
  listening = true
  cluster.on('message', (_worker, m: unknown) => {
    if (!isGhMessage(m) || m.type !== 'gh:metrics') return
    const p = pending.get(m.requestId)
    if (p === undefined) return // answered after its deadline: that scrape went on without it
    pending.delete(m.requestId)
    clearTimeout(p.timer)
    p.resolve(Array.isArray(m.metrics) ? m.metrics as MetricDump : null)
  })
}

/** One worker's registry, or null when it is gone or does not answer in time. */
function collectFrom(pid: number, timeoutMs: number): Promise<MetricDump | null> {
  const w = Object.values(cluster.workers ?? {}).find((x) => x?.process.pid === pid)
  if (w === undefined || !w.isConnected()) return Promise.resolve(null)
  const requestId = newRequestId()
  return new Promise((resolve) => {
    const timer = setTimeout(() => { pending.delete(requestId); resolve(null) }, timeoutMs)
    timer.unref()
    pending.set(requestId, { resolve, timer })
    const msg: ToWorker = { type: 'gh:collect', requestId }
    try {
      w.send(msg, undefined, () => {}) // a failed write is reported to the callback, not as a crash
    } catch {
      pending.delete(requestId)
      clearTimeout(timer)
      resolve(null)
    }
  })
}

function buildVersion(): string {
  // dist/src/telemetry → the package root is three levels up (two from src/ under tsx).
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'gatehouse' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  return 'unknown'
}

export class PrimaryMetrics {
  readonly registry = new Registry()
  private readonly reloads: Counter<'result'>
  private readonly lastReload: Gauge
  private readonly scrapeWorkers: Gauge<'result'>

  constructor(private readonly src: PrimaryMetricSources, private readonly timeoutMs = COLLECT_TIMEOUT_MS) {
    const registers = [this.registry]
    new Gauge({
      name: `${PREFIX}build_info`, help: 'Gatehouse build: version and Node.js runtime (always 1).',
      labelNames: ['version', 'nodejs_version'], registers, aggregator: 'first',
    }).set({ version: buildVersion(), nodejs_version: process.versions.node }, 1)
    new Gauge({
      name: `${PREFIX}config_info`, help: 'The config version the gateway serves (always 1).',
      labelNames: ['version'], registers, aggregator: 'first',
      collect() {
        this.reset()
        const v = src.configVersion()
        if (v !== null) this.set({ version: v }, 1)
      },
    })
    this.reloads = new Counter({
      name: `${PREFIX}config_reloads_total`, help: 'Config reloads by result (success, unchanged, invalid, failed = rolled back).',
      labelNames: ['result'], registers, aggregator: 'sum',
    })
    for (const result of ['success', 'unchanged', 'invalid', 'failed'] as const) this.reloads.inc({ result }, 0)
    this.lastReload = new Gauge({
      name: `${PREFIX}config_last_reload_success_timestamp_seconds`, help: 'When a config was last applied (start or reload), Unix seconds.',
      registers, aggregator: 'max',
    })
    this.lastReload.set(Date.now() / 1000)
    new Counter({
      name: `${PREFIX}worker_restarts_total`, help: 'Workers restarted after a crash or a missed-heartbeat kill.',
      registers, aggregator: 'sum',
      collect() {
        let n = 0
        for (const w of src.workers()) n += w.restarts
        this.reset()
        this.inc(n)
      },
    })
    new Gauge({
      name: `${PREFIX}workers`, help: 'Worker slots configured.',
      registers, aggregator: 'first',
      collect() { this.set(src.workers().length) },
    })
    new Gauge({
      name: `${PREFIX}workers_ready`, help: 'Workers serving traffic.',
      registers, aggregator: 'first',
      collect() { this.set(src.workers().filter((w) => w.state === 'ready').length) },
    })
    this.scrapeWorkers = new Gauge({
      name: `${PREFIX}scrape_workers`, help: 'Workers asked in this scrape, by result (answered, missing = timed out or gone).',
      labelNames: ['result'], registers, aggregator: 'first',
    })
    registerProcessMetrics(this.registry, 'primary')
    listen()
  }

  recordReload(result: ReloadResultLabel): void {
    this.reloads.inc({ result })
    if (result === 'success') this.lastReload.set(Date.now() / 1000)
  }

  /** The exposition text: every answering worker merged, plus the primary's own metrics. */
  async scrape(): Promise<string> {
    const pids = this.src.workers().filter((w) => w.state === 'ready' && w.pid !== null).map((w) => w.pid!)
    const dumps = await Promise.all(pids.map((pid) => collectFrom(pid, this.timeoutMs)))
    const answered = dumps.filter((d): d is MetricDump => d !== null)
    this.scrapeWorkers.set({ result: 'answered' }, answered.length)
    this.scrapeWorkers.set({ result: 'missing' }, pids.length - answered.length)
    const own = await dumpRegistry(this.registry)
    return await mergeRegistries([own, ...answered])
  }
}

export const METRICS_CONTENT_TYPE = CONTENT_TYPE

/**
 * The dedicated metrics listener (Configuration.metrics.address): GET /metrics only, no
 * token (it exposes nothing but bounded, non-secret series); `scrape` returns null while
 * metrics are off (404).
 */
export async function startMetricsServer(host: string, port: number, scrape: () => Promise<string | null>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' || url !== '/metrics') { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return }
    scrape().then((text) => {
      if (text === null) { res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are disabled\n'); return }
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text)
    }, (err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${err.message}\n`)
    })
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}
