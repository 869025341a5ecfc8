// Shared by the bench scripts: child processes that are always stopped, free ports,
// readiness polling, the fixed-body nginx upstream, and a required-tools check.
// Loopback only; every wait is bounded.
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

export function requireTools(bins, hint) {
  for (const bin of bins) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
      console.error(`bench: ${bin} not found (${hint})`)
      process.exit(2)
    }
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
  const port = await freePort()
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), `worker_processes 1;
daemon off;
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:${port}; keepalive_requests 1000000;
  location / { return 200 "${'x'.repeat(100)}"; } } }
`)
  start('taskset', ['-c', '1', 'nginx', '-c', path.join(tmp, 'nginx.conf')])
  return port
}

/**
 * Writes a one-API config (catch-all route to `upstreamPort`, one worker, warn-level logs)
 * into tmp/<name>; `api` and `host` are extra YAML lines for the ApiInstance and
 * Configuration specs (indented two spaces). Returns the directory.
 */
export function writeBenchConfig(name, { gwPort, upstreamPort, adminPort, api = '', host = '' }) {
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
  workers: 1
  admin: { address: http://127.0.0.1:${adminPort} }
${host || '  logging: { runtimeLogs: { logLevel: warn } }\n'}`)
  return dir
}

/** req/s, p99 (ms), non-2xx and total requests from `wrk --latency` output. */
export function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])
  const p99raw = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
  const p99 = Number(p99raw[1]) * (p99raw[2] === 'us' ? 0.001 : p99raw[2] === 's' ? 1000 : 1)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const total = Number(/(\d+) requests in/.exec(out)[1])
  return { rps, p99, non2xx, total }
}
