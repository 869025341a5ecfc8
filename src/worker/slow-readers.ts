/**
 * Clients cut for reading too slowly: a response whose client lags while its buffers
 * (limits.responseBufferBytes, responseBufferTotalBytes) are full, on an endpoint where
 * half the connections are already held paused for such clients (proxy.ts). Without that
 * cut, 1000 slow readers (slowhttptest -X) held every upstream connection for up to
 * sendTimeoutMs and every other request to the service queued behind them.
 *
 * Counted for the metrics (gatehouse_requests_shed_total{reason="slow_reader"}) and logged
 * as episodes, like load shedding: one line at the first cut, then at most one summary
 * per LOG_EVERY_MS while cuts go on, so an attack cannot flood the runtime log. Each cut
 * exchange also ends with outcome GH_ERR_SLOW_READER (access log).
 *
 * @module
 */
import type { Logger } from '../telemetry/runtime-log.js'
import type { Exchange } from './exchange.js'

const LOG_EVERY_MS = 10_000

/** Monotonic since the worker started. */
export const slowReaders = { cut: 0 }

let log: Logger | null = null
let timer: NodeJS.Timeout | null = null
let cutAtLastLine = 0

export function configureSlowReaders(logger: Logger): void {
  log = logger
}

function summary(): void {
  timer = null
  const n = slowReaders.cut - cutAtLastLine
  if (n === 0) return
  cutAtLastLine = slowReaders.cut
  log?.warn('GH_WRN_SLOW_READERS_CUT', `${n} more clients cut for reading too slowly in the last ${LOG_EVERY_MS / 1000} s`, { cut: n })
  timer = setTimeout(summary, LOG_EVERY_MS).unref()
}

/** Counts (and maybe logs) one cut; the caller closes the client and cancels the upstream. */
export function slowReaderCut(ex: Exchange, origin: string, paused: number): void {
  slowReaders.cut++
  // While the timer runs a line went out less than LOG_EVERY_MS ago: the summary counts this one.
  if (timer !== null) return
  cutAtLastLine = slowReaders.cut
  log?.warn('GH_WRN_SLOW_READERS_CUT', `client cut for reading too slowly: response buffers full and ${paused} connections to ${origin} already held for slow clients`,
    { api: ex.api?.name ?? null, route: ex.route?.id ?? null, upstream: origin, clientIp: ex.clientIp })
  timer = setTimeout(summary, LOG_EVERY_MS).unref()
}
