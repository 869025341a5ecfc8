/**
 * Structured runtime log: one JSON line per event with level, code and message, on
 * stderr (journald picks it up under systemd). The access log and file output with a
 * buffered writer belong to the observability work; this is the minimal honest logger
 * every process needs from the start. Disabled levels are a `noop` (pino's levels idea).
 *
 * @module
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(code: string, msg: string, fields?: Record<string, unknown>): void
  info(code: string, msg: string, fields?: Record<string, unknown>): void
  warn(code: string, msg: string, fields?: Record<string, unknown>): void
  error(code: string, msg: string, fields?: Record<string, unknown>): void
  setLevel(level: LogLevel): void
}

function noop(): void {}

export function createLogger(component: string, level: LogLevel = 'info', out: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const base = `,"component":${JSON.stringify(component)},"pid":${process.pid}`
  const emit = (lvl: LogLevel) => (code: string, msg: string, fields?: Record<string, unknown>): void => {
    let line = `{"time":"${new Date().toISOString()}","level":"${lvl}","code":${JSON.stringify(code)},"msg":${JSON.stringify(msg)}${base}`
    if (fields !== undefined) {
      for (const k in fields) line += `,${JSON.stringify(k)}:${JSON.stringify(fields[k] ?? null)}`
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
