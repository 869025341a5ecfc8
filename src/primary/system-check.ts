/**
 * Host settings the gateway depends on but does not own, read once by the primary at
 * start: each problem is logged once (coded warning) and listed in /status `warnings`.
 *
 * `net.ipv4.tcp_migrate_req` (Linux >= 5.14): every worker binds every listener with
 * SO_REUSEPORT, so the kernel hands each connection to one worker's accept queue. When that
 * worker dies (crash, hung-worker kill, restart), the connections in its queue (accepted by
 * the kernel, not yet by the worker) are reset unless this is 1, which moves them to another
 * worker's listener. The packages set it (/usr/lib/sysctl.d/60-gatehouse.conf).
 *
 * @module
 * @example
 *   const facts = readSystemFacts()
 *   for (const w of systemWarnings(facts)) log.warn(w.code, w.message)
 */
import fs from 'node:fs'

export const TCP_MIGRATE_REQ_PATH = '/proc/sys/net/ipv4/tcp_migrate_req'

export interface SystemFacts {
  /** Value of net.ipv4.tcp_migrate_req; null when the kernel (or this namespace) has no such key. */
  tcpMigrateReq: number | null
}

export interface SystemWarning {
  code: string
  message: string
}

/** The sysctl's value, or null when it cannot be read (missing key: Linux < 5.14). */
export function readTcpMigrateReq(file = TCP_MIGRATE_REQ_PATH): number | null {
  try {
    const v = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10)
    return Number.isNaN(v) ? null : v
  } catch {
    return null
  }
}

export function readSystemFacts(): SystemFacts {
  return { tcpMigrateReq: readTcpMigrateReq() }
}

const RESETS = 'a worker that exits (crash, restart, hung-worker kill) resets the connections queued on its SO_REUSEPORT listeners ' +
  '(accepted by the kernel, not yet by the worker) instead of handing them to another worker'

export function systemWarnings(f: SystemFacts): SystemWarning[] {
  const out: SystemWarning[] = []
  if (f.tcpMigrateReq === 0) {
    out.push({
      code: 'GH_WRN_TCP_MIGRATE_REQ',
      message: `net.ipv4.tcp_migrate_req is 0: ${RESETS}. Fix: sysctl -w net.ipv4.tcp_migrate_req=1, and keep it across reboots ` +
        "with a file in /etc/sysctl.d/ (e.g. echo 'net.ipv4.tcp_migrate_req = 1' > /etc/sysctl.d/60-gatehouse.conf); " +
        'the gatehouse packages install /usr/lib/sysctl.d/60-gatehouse.conf',
    })
  } else if (f.tcpMigrateReq === null) {
    out.push({
      code: 'GH_WRN_TCP_MIGRATE_REQ',
      message: `net.ipv4.tcp_migrate_req cannot be read (${TCP_MIGRATE_REQ_PATH}; it needs Linux >= 5.14): ${RESETS}. ` +
        'Fix: run on a kernel >= 5.14 and set net.ipv4.tcp_migrate_req = 1 (sysctl -w, and a file in /etc/sysctl.d/)',
    })
  }
  return out
}
