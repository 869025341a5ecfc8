/**
 * One GET through a pool's dispatch, for active health checks: the status code, with the
 * body read and dropped so the connection can be reused.
 *
 * @module
 */
import type { DispatchHandler, UpstreamPool } from './dispatch.js'

export function probe(pool: UpstreamPool, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0
    const handler: DispatchHandler = {
      onConnect() {},
      onHeaders(s) { status = s; return true },
      onData() { return true },
      onComplete() { resolve(status) },
      onError: reject,
    }
    pool.dispatch({ path, method: 'GET', headers: [], body: null, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }, handler)
  })
}
