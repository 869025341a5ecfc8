/**
 * The primary process: load and validate the config directory, fork and supervise the
 * workers, serve the admin API, talk to systemd, and turn signals into reloads and
 * drains. It holds no request state and never proxies.
 *
 *   SIGHUP / POST /reload / file change (watch) → reload in place
 *   SIGTERM / SIGINT → STOPPING=1, workers drain (close listeners, finish in flight), exit 0
 *
 * @module
 */
import cluster from 'node:cluster'
import fs from 'node:fs'
import type http from 'node:http'
import { loadConfigDir, formatConfigError, redact } from '../config/load.js'
import type { Snapshot } from '../config/snapshot.js'
import type { ToWorker } from '../ipc/protocol.js'
import { createLogger, reopenRuntimeLog, setRuntimeLogDirectory, setRuntimeLogSecrets, type Logger } from '../telemetry/runtime-log.js'
import { startAdminServer } from './admin-server.js'
import { PrimaryMetrics, startMetricsServer } from '../telemetry/metrics-primary.js'
import { allowedCpus } from './cpu-affinity.js'
import { createNotifier, type Notifier } from './sd-notify.js'
import { Supervisor } from './supervisor.js'
import { busyListeners } from './port-check.js'
import { readSystemFacts, systemWarnings, type SystemFacts, type SystemWarning } from './system-check.js'
import { applyPrimaryV8Flags } from './v8-flags.js'

export interface GatewayOptions {
  configDir: string
  /** Overrides Configuration.spec.admin (tests run several gateways side by side). */
  adminPort?: number
}

type ReloadResult = { ok: true; version: string; changed: boolean } | { ok: false; invalid: boolean; errors: string[] }

export class Gateway {
  private supervisor!: Supervisor
  private admin: http.Server | null = null
  private metrics: PrimaryMetrics | null = null
  /** The dedicated metrics listener (Configuration.metrics.address), when set. */
  private metricsServer: http.Server | null = null
  private secrets: string[] = []
  private reloading: Promise<ReloadResult> | null = null
  private watcher: fs.FSWatcher | null = null
  private watchdog: NodeJS.Timeout | null = null
  private stopping = false
  private started = false
  private readonly startedAt = Date.now()
  /** Host settings read once at start (system-check.ts), shown in /status. */
  private system: SystemFacts = { tcpMigrateReq: null }
  private warnings: SystemWarning[] = []
  readonly log: Logger = createLogger('primary')
  readonly notify: Notifier

  constructor(private readonly opts: GatewayOptions) {
    this.notify = createNotifier(process.env, (level, code, msg) => this.log[level](code, msg))
  }

  /** A stop (signal) began; it drains the workers and exits the process itself. */
  get isStopping(): boolean { return this.stopping }

  /** Returns false (after logging why) when the gateway could not start. */
  async start(): Promise<boolean> {
    // Handlers go in first: a signal's default action would kill the primary mid-start and
    // leave the forked workers to notice the lost IPC channel on their own.
    process.on('SIGHUP', () => {
      if (this.started) void this.reload()
      else this.log.warn('GH_WRN_RELOAD_IGNORED', 'SIGHUP during start-up ignored')
    })
    process.on('SIGTERM', () => { void this.stop('SIGTERM') })
    process.on('SIGINT', () => { void this.stop('SIGINT') })
    process.on('SIGUSR1', () => this.reopenLogs())
    // This process only (see v8-flags.ts), before it allocates anything for the config.
    applyPrimaryV8Flags()
    const loaded = await loadConfigDir(this.opts.configDir)
    if (!loaded.ok) {
      for (const e of loaded.errors) this.log.error('GH_ERR_CONFIG_INVALID', formatConfigError(e))
      return false
    }
    const snap = loaded.snapshot
    this.secrets = loaded.secrets
    this.log.setLevel(snap.host.logLevel)
    setRuntimeLogSecrets(loaded.secrets)
    setRuntimeLogDirectory(snap.host.logDirectory)
    if (snap.host.accessLogs && snap.host.logDirectory === null) {
      this.log.info('GH_ACCESS_LOG_OFF', 'no access log: logging.directory is not set')
    }
    this.system = readSystemFacts()
    this.warnings = systemWarnings(this.system)
    for (const w of this.warnings) this.log.warn(w.code, w.message)
    const busy = await busyListeners(snap.listeners)
    if (busy.length > 0) {
      for (const b of busy) this.log.error('GH_ERR_LISTENER_BUSY', b)
      return false
    }
    const cpus = allowedCpus()
    const workers = snap.host.workers === 'auto' ? cpus.length : snap.host.workers
    this.supervisor = new Supervisor({
      workers,
      cpus,
      heartbeatIntervalMs: snap.host.heartbeatIntervalMs,
      heartbeatMisses: snap.host.heartbeatMisses,
      log: this.log,
      onChange: () => this.onWorkersChanged(),
    })
    this.metrics = new PrimaryMetrics({
      configVersion: () => this.supervisor.currentSnapshot?.version ?? null,
      workers: () => this.supervisor.status(),
    })
    const adminPort = this.opts.adminPort ?? snap.host.admin.port
    try {
      this.admin = await startAdminServer(snap.host.admin.host, adminPort, snap.host.admin.token, {
        ready: () => this.readiness(),
        status: () => this.statusDoc(),
        config: () => this.configDoc(),
        reload: () => this.reload(),
        metrics: () => this.scrapeMetrics(),
      })
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      const why = e.code === 'EADDRINUSE' ? `${snap.host.admin.host}:${adminPort} is already in use` : e.message
      this.log.error('GH_ERR_ADMIN_START', `admin API not started: ${why}`)
      return false
    }
    const metricsAt = snap.host.metrics.address
    if (snap.host.metrics.enabled && metricsAt !== null) {
      try {
        this.metricsServer = await startMetricsServer(metricsAt.host, metricsAt.port, () => this.scrapeMetrics())
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        const why = e.code === 'EADDRINUSE' ? `${metricsAt.host}:${metricsAt.port} is already in use` : e.message
        this.log.error('GH_ERR_ADMIN_START', `metrics listener not started: ${why}`)
        this.admin.close()
        return false
      }
    }
    if (this.stopping) { this.admin.close(); return false }
    const ok = await this.supervisor.start(snap)
    if (this.stopping) return false // stop() drains the workers and exits
    if (!ok) {
      this.log.error('GH_ERR_WORKER_START', 'not every worker could start with the configuration')
      await this.supervisor.stop(1000)
      this.admin.close()
      return false
    }
    this.log.info('GH_STARTED', `serving config ${snap.version} with ${workers} workers; admin on ${snap.host.admin.host}:${adminPort}`)
    this.notify.ready(this.statusLine())
    const every = this.notify.watchdogIntervalMs()
    if (every !== null) {
      this.watchdog = setInterval(() => { if (this.supervisor.healthy()) this.notify.watchdog() }, every)
    }
    if (snap.host.watch) this.startWatch()
    this.started = true
    return true
  }

  /** Validate the whole directory, then swap it in on every worker; never half-applied. */
  reload(): Promise<ReloadResult> {
    // Reloads are serialised: a second request while one runs waits for it, then runs.
    const run = async (): Promise<ReloadResult> => {
      if (this.stopping) return { ok: false, invalid: false, errors: ['the gateway is stopping'] }
      this.notify.reloading('reloading configuration')
      try {
        const loaded = await loadConfigDir(this.opts.configDir)
        if (!loaded.ok) {
          const errors = loaded.errors.map(formatConfigError)
          for (const e of errors) this.log.error('GH_ERR_CONFIG_INVALID', e)
          this.log.error('GH_ERR_RELOAD_FAILED', `reload rejected (${errors.length} errors); still serving ${this.supervisor.currentSnapshot?.version}`)
          return { ok: false, invalid: true, errors }
        }
        const snap = loaded.snapshot
        if (snap.version === this.supervisor.currentSnapshot?.version) return { ok: true, version: snap.version, changed: false }
        this.warnRestartOnly(snap)
        const r = await this.supervisor.apply(snap)
        if (!r.ok) {
          this.log.error('GH_ERR_RELOAD_FAILED', `reload rolled back: ${r.error}`)
          return { ok: false, invalid: false, errors: [r.error] }
        }
        this.secrets = loaded.secrets
        this.log.setLevel(snap.host.logLevel)
        setRuntimeLogSecrets(loaded.secrets)
        setRuntimeLogDirectory(snap.host.logDirectory)
        if (snap.host.watch && this.watcher === null) this.startWatch()
        else if (!snap.host.watch && this.watcher !== null) { this.watcher.close(); this.watcher = null }
        this.log.info('GH_RELOADED', `now serving config ${snap.version}`)
        return { ok: true, version: snap.version, changed: true }
      } finally {
        // After STOPPING=1 systemd must not see READY=1 again.
        if (!this.stopping) this.notify.ready(this.statusLine())
      }
    }
    const prev = this.reloading ?? Promise.resolve(null)
    const next = prev.then(run, run)
    next.then((r) => this.metrics?.recordReload(r.ok ? (r.changed ? 'success' : 'unchanged') : r.invalid ? 'invalid' : 'failed'),
      () => this.metrics?.recordReload('failed'))
    this.reloading = next
    return next
  }

  async stop(reason: string): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    if (this.supervisor === undefined) process.exit(0) // nothing forked yet
    const snap = this.supervisor.currentSnapshot
    const drainMs = snap?.host.drainTimeoutMs ?? 25_000
    this.log.info('GH_STOPPING', `${reason}: draining workers (up to ${drainMs} ms)`)
    this.notify.stopping(`draining (${reason})`)
    if (this.watchdog !== null) clearInterval(this.watchdog)
    this.watcher?.close()
    this.watcher = null
    await this.supervisor.stop(drainMs)
    this.admin?.close()
    this.metricsServer?.close()
    this.notify.close()
    this.log.info('GH_STOPPED', 'all workers drained')
    process.exit(0)
  }

  /** SIGUSR1 (logrotate): reopen this process's log file and have every worker reopen its own. */
  private reopenLogs(): void {
    reopenRuntimeLog()
    const msg: ToWorker = { type: 'gh:reopen-logs' }
    for (const w of Object.values(cluster.workers ?? {})) if (w !== undefined && w.isConnected()) w.send(msg, undefined, () => {})
  }

  /** The merged exposition text; null while metrics are disabled (/metrics answers 404). */
  private scrapeMetrics(): Promise<string | null> {
    if (this.metrics === null || this.supervisor.currentSnapshot?.host.metrics.enabled !== true) return Promise.resolve(null)
    return this.metrics.scrape()
  }

  private warnRestartOnly(next: Snapshot): void {
    const cur = this.supervisor.currentSnapshot
    if (cur === null) return
    const a = cur.host
    const b = next.host
    const pending: string[] = []
    if (a.workers !== b.workers) pending.push(`workers ${a.workers} → ${b.workers}`)
    if (a.admin.host !== b.admin.host || a.admin.port !== b.admin.port) pending.push('admin.address')
    if (a.admin.token !== b.admin.token) pending.push('admin.token')
    const ma = a.metrics.address
    const mb = b.metrics.address
    if (ma?.host !== mb?.host || ma?.port !== mb?.port || (a.metrics.enabled !== b.metrics.enabled && mb !== null)) pending.push('metrics.address')
    if (pending.length > 0) {
      this.log.warn('GH_WRN_RESTART_REQUIRED', `${pending.join(', ')} take effect only on restart; the rest was reloaded`)
    }
  }

  private startWatch(): void {
    let timer: NodeJS.Timeout | null = null
    this.watcher = fs.watch(this.opts.configDir, () => {
      // Editors write in several steps; reload once things settle.
      if (timer !== null) clearTimeout(timer)
      timer = setTimeout(() => { timer = null; void this.reload() }, 300)
    })
  }

  private onWorkersChanged(): void {
    if (!this.stopping) this.notify.status(this.statusLine())
  }

  private statusLine(): string {
    const s = this.supervisor
    return `${s.readyCount()} workers ready, config ${s.currentSnapshot?.version ?? 'none'}`
  }

  private readiness(): { ready: boolean; reason: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' }
    if (!this.supervisor.allReady()) return { ready: false, reason: 'not every worker serves the current config' }
    // Still ready (200): policies apply their configured fallback, so taking the host out of
    // a load balancer would only move the load; the reason tells operators what is missing.
    const degraded = this.supervisor.degraded()
    if (degraded.length > 0) return { ready: true, reason: `degraded: ${degraded.join(', ')}` }
    return { ready: true, reason: 'ok' }
  }

  private statusDoc(): unknown {
    return {
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      configVersion: this.supervisor.currentSnapshot?.version ?? null,
      configDir: this.opts.configDir,
      ready: this.readiness().ready,
      workers: this.supervisor.status(),
      system: this.system,
      warnings: this.warnings,
    }
  }

  private configDoc(): unknown {
    return redact(this.supervisor.currentSnapshot, this.secrets)
  }
}
