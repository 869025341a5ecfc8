/** A real redis-server for tests, on a free loopback port, stopped by PID. */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { freePort, waitFor } from './gateway.js'

export interface RedisServer {
  port: number
  address: string
  proc: ChildProcess
  /** Sends a command with redis-cli semantics over RESP and returns the raw reply text. */
  command(...args: string[]): Promise<string>
  stop(): Promise<void>
  restart(): Promise<void>
}

function resp(args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')
}

function send(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let out = ''
    const t = setTimeout(() => { s.destroy(); reject(new Error('redis command timed out')) }, 2000)
    s.on('data', (c) => {
      out += c.toString()
      // One complete reply is enough for the simple commands tests use.
      if (out.endsWith('\r\n')) { clearTimeout(t); s.end(); resolve(out) }
    })
    s.on('error', (e) => { clearTimeout(t); reject(e) })
    s.write(resp(args))
  })
}

export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? await freePort()
  let proc = launch(p)
  const server: RedisServer = {
    port: p,
    address: `127.0.0.1:${p}`,
    get proc() { return proc },
    command: (...args) => send(p, args),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await exited
      }
    },
    async restart() {
      await server.stop()
      proc = launch(p)
      await ready(p)
    },
  }
  await ready(p)
  return server
}

function launch(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' })
}

async function ready(port: number): Promise<void> {
  await waitFor('redis ready', async () => (await send(port, ['PING']).catch(() => '')).startsWith('+PONG'), 10_000, 50)
}

/**
 * A real Redis Sentinel (redis-server --sentinel) monitoring `master` under `name`.
 * The config file is written to a temp dir: Sentinel rewrites it while it runs.
 */
export async function startSentinel(master: RedisServer, name = 'main'): Promise<{ port: number; address: string; stop(): Promise<void> }> {
  const fs = await import('node:fs')
  const os = await import('node:os')
  const path = await import('node:path')
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-sentinel-'))
  const conf = path.join(dir, 'sentinel.conf')
  fs.writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\nsentinel down-after-milliseconds ${name} 1000\n`)
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  await waitFor('sentinel ready', async () => (await send(port, ['SENTINEL', 'get-master-addr-by-name', name]).catch(() => '')).includes(String(master.port)), 10_000, 100)
  return {
    port,
    address: `127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await exited
      }
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
