// k6's runtime has a console (it logs to k6's output); @types/k6 does not declare it and the
// DOM lib is not for k6.
declare const console: {
  log(...data: unknown[]): void
  info(...data: unknown[]): void
  warn(...data: unknown[]): void
  error(...data: unknown[]): void
  debug(...data: unknown[]): void
}
