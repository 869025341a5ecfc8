/**
 * Start-up check that every listener port is free. uWS binds with SO_REUSEPORT, so a
 * second Gatehouse (or any process that also sets it) on the same port would silently
 * share its traffic instead of failing (docs/uws-parser-findings.md §15). A plain Node
 * socket does not set SO_REUSEPORT, so binding one for a moment fails on any holder.
 *
 * @module
 */
import net from 'node:net'
import type { ListenerSnap } from '../config/snapshot.js'

function probe(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'
      ? `${host}:${port} is already in use by another process`
      : `${host}:${port} cannot be bound: ${err.message}`))
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(null)))
  })
}

/** One message per listener that cannot be bound; empty when all are free. */
export async function busyListeners(listeners: readonly ListenerSnap[]): Promise<string[]> {
  const out = await Promise.all(listeners.map((l) => probe(l.host, l.port)))
  return out.filter((m): m is string => m !== null)
}
