/**
 * Upstream timeouts without a timer per request: every connection carries the deadline of
 * the one wait it is in (connect, response head, body idle, keep-alive idle), and one
 * interval per worker compares them. Setting a deadline is a field write on the hot path;
 * the price is up to SWEEP_MS of lateness, which matters nowhere for timeouts of a second
 * or more (undici's own timers are coarser: 1 s resolution above 1 s).
 *
 * @module
 */
import { Wait, type H1Connection } from './connection.js'

const SWEEP_MS = 50

const live = new Set<H1Connection>()
let timer: NodeJS.Timeout | null = null

/** Watches a new connection until it closes. */
export function armSweep(c: H1Connection): void {
  live.add(c)
  if (timer === null) timer = setInterval(sweep, SWEEP_MS).unref()
}

function sweep(): void {
  const now = performance.now()
  for (const c of live) {
    if (c.closed) { live.delete(c); continue }
    if (c.wait !== Wait.None && now >= c.deadline) c.timedOut()
  }
  if (live.size === 0 && timer !== null) { clearInterval(timer); timer = null }
}
