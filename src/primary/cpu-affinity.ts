/**
 * CPU pinning for workers. The supervisor gives each worker its own CPU out of the set this
 * process may use, so workers do not migrate between cores and evict each other's caches.
 *
 * Pinning is best effort: inside a container without CAP_SYS_NICE, or without util-linux's
 * `taskset`, it fails, and the caller logs the returned reason and serves traffic unpinned.
 *
 * @module
 * @example
 *   const cpus = allowedCpus()                       // e.g. [0, 1, 2, 3, 6]
 *   const res = await pinToCpu(worker.process.pid!, cpus[i % cpus.length]!)
 *   if (!res.ok) log.warn({ reason: res.reason }, 'worker not pinned')
 *   cpuOf(worker.process.pid!)                       // [2] once pinned, for /status
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { findExecutable } from '../util/find-executable.js'

export type PinResult = { ok: true } | { ok: false; reason: string }

// taskset returns in a few ms; the bound only keeps a wedged one from stalling start-up.
const TASKSET_TIMEOUT_MS = 5_000

const CPUS_ALLOWED_LIST = /^Cpus_allowed_list:\s*(\S+)/m

/**
 * Parses a kernel cpu list, the `Cpus_allowed_list` format ("0-3,6"). Returns null on
 * anything malformed, so callers fall back instead of pinning to garbage.
 *
 * @example
 *   parseCpuList('0-3,6') // [0, 1, 2, 3, 6]
 */
export function parseCpuList(list: string): number[] | null {
  const cpus = new Set<number>()
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (m === null) return null
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    if (hi < lo) return null
    for (let cpu = lo; cpu <= hi; cpu++) cpus.add(cpu)
  }
  return cpus.size === 0 ? null : [...cpus].sort((a, b) => a - b)
}

function readCpusAllowed(statusFile: string): number[] | null {
  let text: string
  try {
    text = readFileSync(statusFile, 'utf8')
  } catch {
    return null
  }
  const m = CPUS_ALLOWED_LIST.exec(text)
  return m === null ? null : parseCpuList(m[1]!)
}

/**
 * The CPUs this process may run on. The affinity mask (cgroup cpuset, `taskset` on the unit,
 * systemd's CPUAffinity=) can be narrower than the machine and need not start at 0, so the
 * ids come from /proc; off Linux, `0..availableParallelism()-1` is the best guess.
 *
 * @example
 *   allowedCpus() // [0, 1] on a 2-CPU VM
 */
export function allowedCpus(): number[] {
  const cpus = readCpusAllowed('/proc/self/status')
  if (cpus !== null) return cpus
  return Array.from({ length: availableParallelism() }, (_, i) => i)
}

/**
 * The CPUs `pid` may run on, or null when the process is gone (or there is no /proc).
 *
 * @example
 *   cpuOf(process.pid) // [0, 1]
 */
export function cpuOf(pid: number): number[] | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null
  return readCpusAllowed(`/proc/${pid}/status`)
}


/**
 * Restricts `pid` to `cpu` with `taskset -cp`. Never rejects; failures come back as a reason.
 *
 * `-p` without `-a` pins the main thread only, and that is deliberate: the event loop, which
 * serves every request, stays on its CPU, while V8's GC and compiler helper threads, already
 * running by the time the primary pins a fork, keep the wider mask and can run elsewhere
 * instead of taking time from the loop.
 *
 * @example
 *   await pinToCpu(child.pid!, 2)  // { ok: true }
 *   await pinToCpu(999999, 0)      // { ok: false, reason: "taskset: failed to get pid 999999's affinity: No such process" }
 */
export function pinToCpu(pid: number, cpu: number): Promise<PinResult> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return Promise.resolve({ ok: false, reason: `invalid pid ${pid}` })
  if (!Number.isSafeInteger(cpu) || cpu < 0) return Promise.resolve({ ok: false, reason: `invalid cpu ${cpu}` })
  const taskset = findExecutable('taskset')
  if (taskset === null) return Promise.resolve({ ok: false, reason: 'taskset (util-linux) is not in PATH' })
  return new Promise((resolve) => {
    execFile(
      taskset,
      ['-cp', String(cpu), String(pid)],
      { timeout: TASKSET_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } },
      (err, _stdout, stderr) => {
        if (err === null) resolve({ ok: true })
        else resolve({ ok: false, reason: stderr.trim() || err.message })
      },
    )
  })
}
