// Shared by the bench scripts: child processes that are always stopped, free ports,
// readiness polling, the fixed-body nginx upstream, a required-tools check (or install),
// wrk output parsing and CPU accounting from /proc. Loopback only; every wait is bounded.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-'))

/** `--name value` from argv, as a number, or `def`. */
export function opt(name, def) {
  const args = process.argv.slice(2)
  const i = args.indexOf(`--${name}`)
  return i === -1 ? def : Number(args[i + 1])
}

/** `--name value` from argv, as a string, or `def`. */
export function optStr(name, def) {
  const args = process.argv.slice(2)
  const i = args.indexOf(`--${name}`)
  return i === -1 || args[i + 1] === undefined ? def : args[i + 1]
}

/** Whether `--name` is on the command line. */
export function flag(name) {
  return process.argv.slice(2).includes(`--${name}`)
}

export function hasTool(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0
}

export function requireTools(bins, hint) {
  for (const bin of bins) {
    if (!hasTool(bin)) {
      console.error(`bench: ${bin} not found (${hint})`)
      process.exit(2)
    }
  }
}

/**
 * Like requireTools, but as root installs the missing ones with apt-get (Debian/Ubuntu),
 * running `apt-get update` first only when the plain install fails. Not root: prints the
 * command and exits 2.
 */
export function ensureTools(bins, packages) {
  const missing = bins.filter((b) => !hasTool(b))
  if (missing.length === 0) return
  const cmd = `apt-get install -y ${packages.join(' ')}`
  if (process.getuid?.() !== 0 || !hasTool('apt-get')) {
    console.error(`bench: missing ${missing.join(', ')}; install them (as root): ${cmd}`)
    process.exit(2)
  }
  console.log(`bench: missing ${missing.join(', ')}; running: ${cmd}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const apt = (argv) => spawnSync('apt-get', argv, { stdio: 'inherit', env, timeout: 900_000 }).status === 0
  if (!apt(['install', '-y', ...packages])) {
    apt(['update'])
    apt(['install', '-y', ...packages])
  }
  const still = bins.filter((b) => !hasTool(b))
  if (still.length > 0) {
    console.error(`bench: still missing ${still.join(', ')} after: ${cmd}`)
    process.exit(2)
  }
}

export function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })
}

const children = []
export function start(cmd, argv, opts = {}) {
  const c = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], ...opts })
  children.push(c)
  return c
}
// SIGTERM, not SIGKILL: a killed nginx master leaves its workers running (and holding the port).
export function cleanup() { for (const c of children) { try { c.kill('SIGTERM') } catch {} } }
process.on('exit', cleanup)

export async function waitHttp(url, ms = 15000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.status < 500) return } catch {}
    await sleep(100)
  }
  throw new Error(`timeout waiting for ${url}`)
}

/** nginx on CPU 1 answering every request with a fixed 100-byte body; returns its port. */
export async function startNginxUpstream() {
  return (await startNginxUpstreamProc()).port
}

/**
 * The same upstream, with `server` (extra lines for its server block, e.g. more locations),
 * `http` (extra lines for the http block, e.g. log_format) and `cpu` (taskset list);
 * returns { port, child } (child.pid is the nginx master).
 */
export async function startNginxUpstreamProc({ server = '', http = '', cpu = '1' } = {}) {
  const port = await freePort()
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), `worker_processes 1;
daemon off;
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log;
events { worker_connections 4096; }
http { access_log off;
${http}server { listen 127.0.0.1:${port}; keepalive_requests 1000000;
${server}  location / { return 200 "${'x'.repeat(100)}"; } } }
`)
  const child = start('taskset', ['-c', cpu, 'nginx', '-c', path.join(tmp, 'nginx.conf')])
  return { port, child }
}

/**
 * Writes a one-API config (catch-all route to `upstreamPort`, one worker, warn-level logs)
 * into tmp/<name>; `api` and `host` are extra YAML lines for the ApiInstance and
 * Configuration specs (indented two spaces); `workers` is 1 unless given (e.g. 'auto').
 * Returns the directory.
 */
export function writeBenchConfig(name, { gwPort, upstreamPort, adminPort, api = '', host = '', workers = 1 }) {
  const dir = path.join(tmp, name)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'a.yaml'), `apiVersion: gatehouse/v1
kind: ApiInstance
metadata: { name: bench }
spec:
  address: http://127.0.0.1:${gwPort}/
  services:
    all:
      address: http://127.0.0.1:${upstreamPort}
      routes: [{ rules: [{ path: (/.*) }] }]
${api}---
apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: ${workers}
  admin: { address: http://127.0.0.1:${adminPort} }
${host || '  logging: { runtimeLogs: { logLevel: warn } }\n'}`)
  return dir
}

/**
 * req/s, p50/p90/p99 (ms), non-2xx, socket errors (connect+read+write+timeout) and total
 * requests from `wrk --latency` output.
 */
export function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])
  const pct = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out)
    return m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN
  }
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const total = Number(/(\d+) requests in/.exec(out)[1])
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0
  return { rps, p50: pct(50), p90: pct(90), p99: pct(99), non2xx, errors, total }
}

// ---- CPU accounting from /proc (Linux) ----

/** Clock ticks per second of /proc/stat and /proc/PID/stat (USER_HZ). */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** Whole-machine CPU ticks from /proc/stat: busy (user+nice+system+irq+softirq), steal, total. */
export function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f
  return { busy: user + nice + system + irq + softirq, steal: steal ?? 0, total: f.slice(0, 8).reduce((a, b) => a + (b || 0), 0), idle: idle + iowait }
}

/** /proc/PID/stat fields after the command name (index 0 = state, field 3). */
function statFields(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    f.comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'))
    return f
  } catch { return null }
}

/**
 * Every process: pid → { ppid, comm, ticks (utime+stime, all threads), childTicks
 * (cutime+cstime: children it has waited for) }.
 */
export function procTable() {
  const table = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const f = statFields(name)
    if (!f) continue
    table.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]), comm: f.comm })
  }
  return table
}

/** `root` and all its descendants in a procTable. */
export function processTree(table, root) {
  const kids = new Map()
  for (const [pid, p] of table) { if (!kids.has(p.ppid)) kids.set(p.ppid, []); kids.get(p.ppid).push(pid) }
  const out = []
  const stack = [root]
  while (stack.length > 0) {
    const pid = stack.pop()
    if (!table.has(pid)) continue
    out.push(pid)
    stack.push(...(kids.get(pid) ?? []))
  }
  return out
}

/** CPU ticks spent between two procTables by the given pids (a pid new in `after` counts from 0). */
export function ticksBetween(before, after, pids) {
  let n = 0
  for (const pid of pids) {
    const a = after.get(pid)
    if (!a) continue
    n += a.ticks - (before.get(pid)?.ticks ?? 0)
  }
  return n
}

/**
 * Bytes received and sent on each established TCP connection to local `port` (from
 * `ss -tie`, the kernel's tcp_info): Map socket inode → { peer, rx, tx }. Unlike
 * /proc/PID/io, this counts recv()/send() on sockets; a connection closed meanwhile is gone.
 */
export function tcpBytes(port) {
  const out = spawnSync('ss', ['-tineH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8', timeout: 5000 }).stdout ?? ''
  const conns = new Map()
  let head = null
  for (const line of out.split('\n')) {
    if (/^\S/.test(line)) { head = line; continue }
    if (!head) continue
    const ino = /\bino:(\d+)/.exec(head)?.[1] ?? head.trim().split(/\s+/)[3]
    const rx = /bytes_received:(\d+)/.exec(line)
    const tx = /bytes_sent:(\d+)/.exec(line)
    conns.set(ino, { peer: head.trim().split(/\s+/)[3], rx: Number(rx?.[1] ?? 0), tx: Number(tx?.[1] ?? 0) })
    head = null
  }
  return conns
}

// ---- process sampling from /proc (soak, slowloris) ----

/** Lines in a file, read in pieces: a log from one run can exceed the largest string V8 makes (512 MiB). */
export function countLines(file) {
  let lines = 0
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) for (let i = buf.indexOf(10); i !== -1 && i < n; i = buf.indexOf(10, i + 1)) lines++
  fs.closeSync(fd)
  return lines
}

/** VmRSS of a process in KiB, or null when it is gone. */
export function rssKiB(pid) {
  try { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) } catch { return null }
}

/** Number of open fds of a process (entries of /proc/PID/fd), or null when it is gone. */
export function fdCount(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length } catch { return null }
}

/** What a process's fds point at, counted by kind: socket, pipe, anon_inode:[eventfd], a path … */
export function fdTargets(pid) {
  const out = {}
  let names = []
  try { names = fs.readdirSync(`/proc/${pid}/fd`) } catch { return out }
  for (const fd of names) {
    let t
    try { t = fs.readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue }
    const kind = /^(socket|pipe):/.exec(t)?.[1] ?? t
    out[kind] = (out[kind] ?? 0) + 1
  }
  return out
}

/** CPU ticks (utime+stime, all threads; CLK_TCK per second) a process has used, or null when it is gone. */
export function procTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return Number(f[11]) + Number(f[12])
  } catch { return null }
}

/**
 * Scheduler stats of a process's main thread (/proc/PID/task/PID/schedstat): ns on a CPU and
 * ns waiting runnable for one (a loop that lags while it waits for a CPU is starved, not busy).
 */
export function schedNs(pid) {
  try {
    const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number)
    return { run, wait }
  } catch { return null }
}

/** Soft "Max open files" of a process (/proc/PID/limits), or null. */
export function nofileLimit(pid) {
  try { return /Max open files\s+(\S+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))[1] } catch { return null }
}

/**
 * The built gateway (`start --config dir`) with `ulimit -n` raised first; `exec` keeps the
 * pid the primary's. Its stdout+stderr are kept (last 64 KiB) in `child.output()`.
 */
export function startGateway(configDir, { nofile = 65536, env } = {}) {
  const cmd = `ulimit -n ${nofile} 2>/dev/null || ulimit -n $(ulimit -Hn); exec "$0" "$@"`
  const child = start('sh', ['-c', cmd, process.execPath, path.join(root, 'dist/src/cli/main.js'), 'start', '--config', configDir],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '', ...env } })
  let out = ''
  const keep = (d) => { out = (out + d).slice(-65536) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  child.output = () => out
  return child
}

/** The gateway's processes from the admin API's /status: { primary, workers: [{ slot, pid }] }. */
export async function gatewayPids(adminPort) {
  const s = await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()
  return { primary: s.pid, version: s.configVersion, workers: s.workers.map((w) => ({ slot: w.slot, pid: w.pid, restarts: w.restarts })) }
}

/** Samples of one metric in Prometheus text: Map `process` label (or the label string) → value. */
export function promSamples(text, name) {
  const out = new Map()
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const key = /process="([^"]*)"/.exec(m[1] ?? '')?.[1] ?? m[1] ?? ''
    out.set(key, Number(m[2]))
  }
  return out
}
