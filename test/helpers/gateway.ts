/**
 * Test harness: real gateway processes (the built CLI: primary + workers), real upstream
 * servers and raw client sockets, all on 127.0.0.1. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before } from 'node:test'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const CLI = path.join(ROOT, 'dist/src/cli/main.js')

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

export function tempDir(prefix = 'gh-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export function writeConfig(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true })
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.yaml')) fs.rmSync(path.join(dir, f))
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 50,
  giveUp: () => boolean = () => false): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < end) {
    if (giveUp()) throw new Error(`gave up waiting for ${what}`)
    try {
      const v = await fn()
      if (v !== undefined && v !== false) return v as T
    } catch (err) { last = err }
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}

export interface Gateway {
  proc: ChildProcess
  adminPort: number
  admin: string
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  status(): Promise<{ workers: Array<{ pid: number; version: string; restarts: number; state: string; cpu: number; pinned: boolean }>; configVersion: string }>
}

export async function startGateway(configDir: string, opts: { env?: Record<string, string>; waitReady?: boolean } = {}): Promise<Gateway> {
  const adminPort = await freePort()
  const proc = spawn(process.execPath, [CLI, 'start', '--config', configDir, '--admin-port', String(adminPort)], {
    env: { ...process.env, NOTIFY_SOCKET: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString() })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const admin = `http://127.0.0.1:${adminPort}`
  const gw: Gateway = {
    proc,
    adminPort,
    admin,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      const t = setTimeout(() => proc.kill('SIGKILL'), 40_000)
      const r = await exited
      clearTimeout(t)
      return r
    },
    async status() {
      const r = await fetch(`${admin}/status`)
      return await r.json() as Awaited<ReturnType<Gateway['status']>>
    },
  }
  if (opts.waitReady !== false) {
    let dead = false
    void exited.then(() => { dead = true })
    await waitFor('gateway ready', async () => {
      const r = await fetch(`${admin}/ready`).catch(() => null)
      return r !== null && r.status === 200
    }, 30_000, 100, () => dead).catch((err) => { proc.kill('SIGKILL'); throw new Error(`${(err as Error).message}\n--- gateway output ---\n${out}`) })
  }
  return gw
}

export interface Upstream {
  port: number
  origin: string
  server: http.Server
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }>
  close(): Promise<void>
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void

/** An echo upstream by default: JSON of what reached it. */
export async function startUpstream(handler?: UpstreamHandler, opts: { collectBody?: boolean } = {}): Promise<Upstream> {
  const requests: Upstream['requests'] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { if (opts.collectBody !== false) chunks.push(c) })
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body })
      if (handler) { handler(req, res, body); return }
      const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
  })
  server.keepAliveTimeout = 30_000
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    server,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

/** Sends exact bytes on a fresh connection; resolves with everything read until close or idle. */
export function rawRequest(port: number, bytes: string | Buffer, idleMs = 1500): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    let closed = false
    let timer = setTimeout(done, idleMs)
    function done(): void { clearTimeout(timer); s.destroy(); resolve({ text, closed }) }
    s.on('data', (c) => { text += c.toString('latin1'); clearTimeout(timer); timer = setTimeout(done, 300) })
    s.on('end', () => { closed = true; done() })
    s.on('close', () => { closed = true; done() })
    s.on('error', () => { closed = true; done() })
    s.write(bytes)
  })
}

export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw)
  return m === null ? 0 : Number(m[1])
}

export function apiYaml(name: string, port: number, basePath: string, services: string, extra = ''): string {
  return `apiVersion: gatehouse/v1
kind: ApiInstance
metadata: { name: ${name} }
spec:
  address: http://127.0.0.1:${port}${basePath}
  services:
${services}
${extra}`
}

export function serviceYaml(name: string, endpoints: string[], extra = ''): string {
  return `apiVersion: gatehouse/v1
kind: Service
metadata: { name: ${name} }
spec:
  endpoints: [${endpoints.join(', ')}]
${extra}`
}

export function hostYaml(extra = '', workers = 2): string {
  return `apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: ${workers}
  heartbeat: { intervalMs: 250, misses: 8 }
${extra}`
}

// ── process lifecycle helpers (lifecycle-*.test.ts, cli.test.ts) ──────────────────

/** Live (non-zombie) child pids of `pid`, read from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
      // pid (comm) state ppid ...; comm may hold spaces or parens, so split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name))
    } catch {}
  }
  return out
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Waits (bounded) until none of `pids` is alive; throws naming the survivors. */
export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<void> {
  await waitFor(`pids ${pids.join(', ')} to be gone`, () => pids.every((p) => !isAlive(p)), timeoutMs).catch(() => {
    const left = pids.filter(isAlive)
    for (const p of left) { try { process.kill(p, 'SIGKILL') } catch {} }
    throw new Error(`processes left behind: ${left.join(', ')}`)
  })
}

/** Stops a gateway and checks that the primary and every worker it had are gone. */
export async function stopAndCheck(gw: Gateway | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  if (gw === undefined) return null
  const pids = gw.proc.pid === undefined ? [] : childPids(gw.proc.pid)
  const r = await gw.stop(signal)
  await waitGone(pids)
  return r
}

export interface LoadStats {
  ok: number
  failed: number
  errors: string[]
  /** Value of the `header` response header → count. */
  seen: Map<string, number>
}

/**
 * `clients` keep-alive clients (one connection each, undici Client) looping GET `path`
 * until stop() is called, `maxMs` passes or `maxRequests` were sent in all.
 */
export function startLoad(port: number, path: string, opts: { clients?: number; maxMs?: number; maxRequests?: number; header?: string } = {}): { stats: LoadStats; stop(): Promise<LoadStats> } {
  const { clients = 8, maxMs = 20_000, maxRequests = 200_000, header = '' } = opts
  const stats: LoadStats = { ok: 0, failed: 0, errors: [], seen: new Map() }
  const end = Date.now() + maxMs
  let sent = 0
  let stopped = false
  const loops = Array.from({ length: clients }, async () => {
    const { Client } = await import('undici')
    const c = new Client(`http://127.0.0.1:${port}`, { pipelining: 1, keepAliveTimeout: 30_000 })
    try {
      while (!stopped && Date.now() < end && sent < maxRequests) {
        sent++
        try {
          const r = await c.request({ method: 'GET', path, headersTimeout: 10_000, bodyTimeout: 10_000 })
          await r.body.text()
          if (r.statusCode === 200) {
            stats.ok++
            if (header !== '') {
              const v = String(r.headers[header] ?? '')
              stats.seen.set(v, (stats.seen.get(v) ?? 0) + 1)
            }
          } else {
            stats.failed++
            if (stats.errors.length < 20) stats.errors.push(`HTTP ${r.statusCode}`)
          }
        } catch (err) {
          stats.failed++
          if (stats.errors.length < 20) stats.errors.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`)
        }
      }
    } finally {
      await c.close().catch(() => {})
    }
  })
  const all = Promise.all(loops)
  return {
    stats,
    async stop() {
      stopped = true
      await all
      return stats
    },
  }
}

/** Runs the built CLI; resolves with its exit code and output (bounded by `timeoutMs`). */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout!.on('data', (c: Buffer) => { stdout += c.toString() })
    p.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    p.once('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }) })
  })
}

/**
 * The common test config: one ApiInstance on `port` + `basePath` whose catch-all route
 * `(/.*)` goes to Service `s` with `origins`, plus a 2-worker Configuration.
 */
export function catchAllConfig(port: number, basePath: string, origins: string[], opts: { api?: string; service?: string; host?: string; workers?: number } = {}): string {
  return apiYaml('api', port, basePath, `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, opts.api ?? '') + '---\n' + serviceYaml('s', origins, opts.service ?? '') + '---\n' + hostYaml(opts.host ?? '', opts.workers ?? 2)
}

/** What gatewayFixture sets up; its fields are valid inside the block's tests. */
export interface GatewayFixture {
  gw: Gateway
  port: number
  /** The upstream's origin (http://127.0.0.1:port). */
  origin: string
}

/**
 * The usual fixture of a describe block: an upstream (an echo server from startUpstream, or
 * the http.Server `server` returns), a free port and a temp config dir, and a gateway started
 * on `files(port, origin)`; all stopped and removed after the block.
 */
export function gatewayFixture(files: (port: number, origin: string) => Record<string, string> | Promise<Record<string, string>>,
  server?: () => http.Server): GatewayFixture {
  const f = {} as GatewayFixture
  let echo: Upstream | undefined
  let own: http.Server | undefined
  let dir: string | undefined
  before(async () => {
    if (server === undefined) {
      echo = await startUpstream()
      f.origin = echo.origin
    } else {
      const srv = own = server()
      const p = await new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)))
      f.origin = `http://127.0.0.1:${p}`
    }
    f.port = await freePort()
    dir = tempDir()
    writeConfig(dir, await files(f.port, f.origin))
    f.gw = await startGateway(dir)
  })
  after(async () => {
    await f.gw?.stop()
    await echo?.close()
    if (own !== undefined) {
      own.closeAllConnections()
      await new Promise((r) => own!.close(r))
    }
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })
  return f
}
