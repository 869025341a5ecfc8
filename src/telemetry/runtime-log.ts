/**
 * Structured runtime log: one JSON line per event with time, level, code, msg, component
 * and pid (plus optional fields). Disabled levels are a `noop` (pino's levels idea).
 *
 * Destination: stderr until the config is loaded, and for good when it sets no
 * `logging.directory` (journald picks stderr up under systemd). With a directory, every
 * process (primary and workers) appends to `<directory>/runtime.log` through a buffered
 * LogFile; SIGUSR1 reopens it (logrotate). Start-up errors before the config is known,
 * and a directory that cannot be opened, still go to stderr.
 *
 * Loggers created with the default `out` follow the process-wide destination, so module-
 * level loggers (policies, lease client) created before the config is loaded move to the
 * file with everything else.
 *
 * Secrets: a process that knows the config's substituted secrets (the primary) sets them
 * with `setRuntimeLogSecrets`; they are then replaced in messages and field values, and
 * fields named password/token/secret/passphrase are blanked (config/redact.ts).
 *
 * @module
 * @example
 *   const log = createLogger('primary')
 *   setRuntimeLogDirectory('/var/log/gatehouse')
 *   log.info('GH_STARTED', 'serving', { workers: 4 })
 */
import path from 'node:path'
import { redact, redactString } from '../config/redact.js'
import { LogFile } from './log-file.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

/** File name of the runtime log inside `logging.directory`. */
export const RUNTIME_LOG_FILE = 'runtime.log'

export interface Logger {
  debug(code: string, msg: string, fields?: Record<string, unknown>): void
  info(code: string, msg: string, fields?: Record<string, unknown>): void
  warn(code: string, msg: string, fields?: Record<string, unknown>): void
  error(code: string, msg: string, fields?: Record<string, unknown>): void
  setLevel(level: LogLevel): void
}

function noop(): void {}

// ── process-wide destination ──
let file: LogFile | null = null
let secrets: string[] = []

function toStderr(line: string): void { process.stderr.write(line) }

/** The default `out`: the runtime log file when one is open, else stderr. */
function defaultOut(line: string): void {
  if (file !== null) file.write(line)
  else process.stderr.write(line)
}

/** Reports trouble with the log file itself on stderr (the file is what failed). */
const selfLog = createLogger('logs', 'info', toStderr)

/**
 * Sends runtime logs of this process to `<dir>/runtime.log` (null: back to stderr). Same
 * directory again is a no-op; a failed open keeps the current destination and says why.
 */
export function setRuntimeLogDirectory(dir: string | null): void {
  const want = dir === null ? null : path.join(dir, RUNTIME_LOG_FILE)
  if ((file?.path ?? null) === want) return
  const old = file
  if (want === null) {
    file = null
  } else {
    try {
      file = new LogFile(want, {
        onError: (err) => selfLog.error('GH_ERR_LOG_WRITE', `runtime log ${want}: ${err.message}`),
        onDrop: (n) => selfLog.warn('GH_WRN_LOG_DROPPED', `${n} runtime log lines dropped (disk too slow or failing)`, { file: want }),
      })
    } catch (err) {
      selfLog.error('GH_ERR_LOG_OPEN', `cannot open runtime log ${want}: ${(err as Error).message}; logging to stderr`)
      return
    }
  }
  if (old !== null) void old.close()
}

/** SIGUSR1: reopen the runtime log file (a new file after logrotate moved it). */
export function reopenRuntimeLog(): void {
  file?.reopen()
}

/** Everything buffered so far is written (tests, orderly exit). */
export function flushRuntimeLog(): Promise<void> {
  return file === null ? Promise.resolve() : file.drained()
}

/** Values replaced by [REDACTED] in every runtime log line of this process. */
export function setRuntimeLogSecrets(list: readonly string[]): void {
  // Longest first, so a secret containing a shorter one is replaced whole.
  secrets = [...new Set(list)].filter((s) => s !== '').sort((a, b) => b.length - a.length)
}

export function createLogger(component: string, level: LogLevel = 'info', out: (line: string) => void = defaultOut): Logger {
  const base = `,"component":${JSON.stringify(component)},"pid":${process.pid}`
  const emit = (lvl: LogLevel) => (code: string, msg: string, fields?: Record<string, unknown>): void => {
    const s = secrets
    let line = `{"time":"${new Date().toISOString()}","level":"${lvl}","code":${JSON.stringify(code)},"msg":${JSON.stringify(s.length === 0 ? msg : redactString(msg, s))}${base}`
    if (fields !== undefined) {
      for (const k in fields) {
        const v = s.length === 0 ? fields[k] : (redact({ [k]: fields[k] }, s) as Record<string, unknown>)[k]
        line += `,${JSON.stringify(k)}:${JSON.stringify(v ?? null)}`
      }
    }
    out(line + '}\n')
  }
  const logger = {} as Logger
  logger.setLevel = (l: LogLevel) => {
    for (const name of Object.keys(RANK) as LogLevel[]) logger[name] = RANK[name] >= RANK[l] ? emit(name) : noop
  }
  logger.setLevel(level)
  return logger
}
