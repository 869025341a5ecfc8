import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { after, describe, test } from 'node:test'
import { createNotifier, NOTIFY_CODES, type NotifyLog } from '../../src/primary/sd-notify.js'

interface DgramSocket {
  on(event: 'message', listener: (buf: Buffer) => void): unknown
  on(event: 'error', listener: (err: Error) => void): unknown
  bind(path: string): void
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void
  close(): void
}
const unixDgram = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket }

const dir = mkdtempSync(join(tmpdir(), 'gh-sd-notify-'))
const children: ChildProcess[] = []
const sockets: DgramSocket[] = []
after(() => {
  for (const s of sockets) s.close()
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill()
  rmSync(dir, { recursive: true, force: true })
})

function which(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(d, name), fsConstants.X_OK)
      return join(d, name)
    } catch {}
  }
  return null
}

/** Collects datagrams; `next()` waits for the next one that is not systemd-notify's BARRIER=1. */
class Inbox {
  private readonly queue: string[] = []
  private waiter: ((msg: string) => void) | null = null
  push(msg: string): void {
    // systemd-notify ends every run with a separate BARRIER=1 datagram (sd_notify_barrier).
    if (msg === 'BARRIER=1') return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = null
      w(msg)
    } else this.queue.push(msg)
  }
  next(timeoutMs = 3000): Promise<string> {
    const queued = this.queue.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null
        reject(new Error(`no datagram within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiter = (msg) => {
        clearTimeout(timer)
        resolve(msg)
      }
    })
  }
  get pending(): number {
    return this.queue.length
  }
}

let seq = 0
function listen(): { path: string; inbox: Inbox } {
  const path = join(dir, `notify-${++seq}.sock`)
  const inbox = new Inbox()
  const sock = unixDgram.createSocket('unix_dgram')
  sock.on('message', (buf) => inbox.push(buf.toString('utf8')))
  sock.on('error', (err) => assert.fail(err))
  sock.bind(path)
  sockets.push(sock)
  return { path, inbox }
}

function recorder(): { log: NotifyLog; entries: Array<[string, string, string]> } {
  const entries: Array<[string, string, string]> = []
  return { entries, log: (level, code, message) => void entries.push([level, code, message]) }
}

const monotonicUsec = (): bigint => process.hrtime.bigint() / 1000n

describe('without NOTIFY_SOCKET', () => {
  test('the notifier is disabled and every call is a harmless no-op', () => {
    const { log, entries } = recorder()
    const n = createNotifier({ WATCHDOG_USEC: '2000000' }, log)
    assert.equal(n.enabled, false)
    assert.equal(n.transport, 'none')
    n.ready('x')
    n.reloading()
    n.stopping()
    n.watchdog()
    n.status('x')
    n.close()
    assert.equal(n.watchdogIntervalMs(), null)
    assert.deepEqual(entries, [])
  })

  test('the default env is process.env', () => {
    const saved = process.env.NOTIFY_SOCKET
    delete process.env.NOTIFY_SOCKET
    try {
      assert.equal(createNotifier().enabled, false)
    } finally {
      if (saved !== undefined) process.env.NOTIFY_SOCKET = saved
    }
  })
})

describe('native transport to a filesystem socket', () => {
  test('each call sends exactly one datagram with the protocol lines', async () => {
    const { path, inbox } = listen()
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: path }, log)
    assert.equal(n.enabled, true)
    assert.equal(n.transport, 'native')

    n.ready()
    assert.equal(await inbox.next(), 'READY=1')
    n.ready('serving 2 workers')
    assert.equal(await inbox.next(), 'READY=1\nSTATUS=serving 2 workers')

    const before = monotonicUsec()
    n.reloading('reloading config')
    const afterCall = monotonicUsec()
    const lines = (await inbox.next()).split('\n')
    assert.equal(lines.length, 3)
    assert.equal(lines[0], 'RELOADING=1')
    const m = /^MONOTONIC_USEC=(\d+)$/.exec(lines[1]!)
    assert.ok(m, `MONOTONIC_USEC line: ${lines[1]}`)
    const usec = BigInt(m[1]!)
    assert.ok(before <= usec && usec <= afterCall, `${usec} within [${before}, ${afterCall}]`)
    assert.equal(lines[2], 'STATUS=reloading config')

    n.reloading()
    assert.match(await inbox.next(), /^RELOADING=1\nMONOTONIC_USEC=\d+$/)

    n.stopping()
    assert.equal(await inbox.next(), 'STOPPING=1')
    n.stopping('draining')
    assert.equal(await inbox.next(), 'STOPPING=1\nSTATUS=draining')
    n.watchdog()
    assert.equal(await inbox.next(), 'WATCHDOG=1')
    n.status('2 workers, config v7')
    assert.equal(await inbox.next(), 'STATUS=2 workers, config v7')
    assert.deepEqual(entries, [])
  })

  test('a newline in a status text cannot inject another KEY=VALUE line', async () => {
    const { path, inbox } = listen()
    const n = createNotifier({ NOTIFY_SOCKET: path })
    n.status('ok\nREADY=1\r\nMAINPID=1')
    assert.equal(await inbox.next(), 'STATUS=ok READY=1 MAINPID=1')
  })

  test('after close() nothing more is sent', async () => {
    const { path, inbox } = listen()
    const n = createNotifier({ NOTIFY_SOCKET: path })
    n.watchdog()
    assert.equal(await inbox.next(), 'WATCHDOG=1')
    n.close()
    n.ready()
    n.watchdog()
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(inbox.pending, 0)
    await assert.rejects(inbox.next(50))
  })

  test('a send failure is logged once per cause and never thrown', () => {
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: join(dir, 'nobody-listens.sock') }, log)
    assert.equal(n.transport, 'native')
    n.ready()
    n.watchdog()
    n.stopping()
    assert.equal(entries.length, 1)
    assert.equal(entries[0]![0], 'error')
    assert.equal(entries[0]![1], NOTIFY_CODES.SEND)
    assert.match(entries[0]![2], /ENOENT/)
  })

  test('a throwing log callback does not escape either', () => {
    const n = createNotifier({ NOTIFY_SOCKET: join(dir, 'nobody-listens.sock') }, () => {
      throw new Error('logger down')
    })
    assert.doesNotThrow(() => n.ready())
  })
})

describe('watchdogIntervalMs', () => {
  const sock = join(dir, 'wd.sock')
  test('is half of WATCHDOG_USEC, in milliseconds', () => {
    assert.equal(createNotifier({ NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000' }).watchdogIntervalMs(), 1000)
  })
  test('applies when WATCHDOG_PID is this process', () => {
    const env = { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(process.pid) }
    assert.equal(createNotifier(env).watchdogIntervalMs(), 1000)
  })
  test('is null when WATCHDOG_PID names another process', () => {
    const env = { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(process.ppid) }
    assert.equal(createNotifier(env).watchdogIntervalMs(), null)
  })
  test('is null when WATCHDOG_USEC is missing, zero or garbage', () => {
    for (const v of [undefined, '', '0', '-5', 'soon', '1.5']) {
      const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: sock }
      if (v !== undefined) env.WATCHDOG_USEC = v
      assert.equal(createNotifier(env).watchdogIntervalMs(), null, `WATCHDOG_USEC=${v}`)
    }
  })
})

const systemdNotify = which('systemd-notify')

describe('systemd-notify fallback', () => {
  test('without the addon it warns once and delivers the same lines, in order', { skip: systemdNotify === null && 'systemd-notify not installed' }, async () => {
    // systemd-notify needs no running systemd: it just sends to NOTIFY_SOCKET (and adds a
    // BARRIER=1 datagram, which Inbox drops). Verified on systemd 252 outside any unit.
    const { path, inbox } = listen()
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: path, PATH: process.env.PATH }, log, { forceFallback: true })
    assert.equal(n.enabled, true)
    assert.equal(n.transport, 'systemd-notify')
    assert.equal(entries.length, 1)
    assert.equal(entries[0]![0], 'warn')
    assert.equal(entries[0]![1], NOTIFY_CODES.FALLBACK)
    assert.match(entries[0]![2], /native addon is missing/)

    // Queued back to back: the chain must keep RELOADING ahead of READY.
    n.reloading('reloading')
    n.ready('serving 2 workers')
    n.watchdog()
    n.stopping()
    const reloading = await inbox.next(5000)
    assert.match(reloading, /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading$/)
    assert.equal(await inbox.next(5000), 'READY=1\nSTATUS=serving 2 workers')
    assert.equal(await inbox.next(5000), 'WATCHDOG=1')
    assert.equal(await inbox.next(5000), 'STOPPING=1')
    assert.equal(entries.length, 1, 'no further log lines')
  })

  test('a failing systemd-notify run is logged, not thrown', { skip: systemdNotify === null && 'systemd-notify not installed' }, async () => {
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: join(dir, 'nobody-listens.sock'), PATH: process.env.PATH }, log, {
      forceFallback: true,
    })
    n.ready()
    n.ready()
    const deadline = Date.now() + 5000
    while (entries.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 200)) // the second run must not add a line
    assert.deepEqual(
      entries.map(([level, code]) => [level, code]),
      [
        ['warn', NOTIFY_CODES.FALLBACK],
        ['error', NOTIFY_CODES.SEND],
      ],
    )
  })

  test('with neither the addon nor systemd-notify it logs one error and stays a no-op', () => {
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: join(dir, 'x.sock'), PATH: join(dir, 'empty-bin') }, log, {
      forceFallback: true,
    })
    assert.equal(n.enabled, false)
    assert.equal(n.transport, 'none')
    n.ready()
    n.watchdog()
    assert.equal(entries.length, 1)
    assert.equal(entries[0]![0], 'error')
    assert.equal(entries[0]![1], NOTIFY_CODES.UNAVAILABLE)
  })

  test('an unsupported address family (vsock:) is reported as unavailable', () => {
    const { log, entries } = recorder()
    const n = createNotifier({ NOTIFY_SOCKET: 'vsock:2:1234' }, log)
    assert.equal(n.enabled, false)
    assert.deepEqual(
      entries.map(([, code]) => code),
      [NOTIFY_CODES.UNAVAILABLE],
    )
  })
})

describe('abstract-namespace sockets', () => {
  test('unix-dgram cannot address them: every "\\0name" collapses into one address', (t) => {
    // Pins the reason the notifier routes @name sockets to systemd-notify. unix-dgram
    // strncpy()s the path (stopping at the leading NUL) and passes sizeof(sockaddr_un), so
    // a socket "bound" to \0a receives what was sent to \0b. If this ever fails, unix-dgram
    // learned abstract addresses and nativePath() can accept '@'.
    const rx = unixDgram.createSocket('unix_dgram')
    let bindError: Error | null = null
    rx.on('error', (err) => (bindError = err))
    rx.bind(`\0gh-test-a-${process.pid}`)
    if (bindError !== null) {
      rx.close()
      // The all-NUL abstract address is global per network namespace; another run may hold it.
      t.skip(`cannot bind the collapsed abstract address: ${(bindError as Error).message}`)
      return
    }
    sockets.push(rx)
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('collapse not observed')), 2000)
      rx.on('message', (buf) => {
        clearTimeout(timer)
        assert.equal(buf.toString(), 'X=1')
        resolve()
      })
      const tx = unixDgram.createSocket('unix_dgram')
      tx.send(Buffer.from('X=1'), 0, 3, `\0gh-test-b-${process.pid}`, (err) => {
        tx.close()
        if (err) reject(err)
      })
    })
  })

  const python = which('python3')
  test(
    'an @name NOTIFY_SOCKET is reached through systemd-notify',
    { skip: (systemdNotify === null && 'systemd-notify not installed') || (python === null && 'python3 (test-only receiver) not installed') },
    async () => {
      // unix-dgram cannot bind a real abstract socket either, so python3 stands in for the
      // service manager here: it binds \0name and prints each datagram as a JSON line.
      const name = `gh-test-abstract-${process.pid}`
      const receiver = spawn(
        python!,
        [
          '-c',
          'import json,socket,sys\n' +
            's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n' +
            's.bind("\\0"+sys.argv[1])\n' +
            'print("bound",flush=True)\n' +
            'while True:\n' +
            '  print(json.dumps(s.recv(65536).decode()),flush=True)\n',
          name,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
      children.push(receiver)
      const inbox = new Inbox()
      let buffered = ''
      let bound!: () => void
      const isBound = new Promise<void>((r) => (bound = r))
      receiver.stdout!.setEncoding('utf8')
      receiver.stdout!.on('data', (chunk: string) => {
        buffered += chunk
        let nl
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl)
          buffered = buffered.slice(nl + 1)
          if (line === 'bound') bound()
          else inbox.push(JSON.parse(line) as string)
        }
      })
      await isBound

      const { log, entries } = recorder()
      const n = createNotifier({ NOTIFY_SOCKET: `@${name}`, PATH: process.env.PATH }, log)
      assert.equal(n.transport, 'systemd-notify')
      assert.deepEqual(
        entries.map(([level, code]) => [level, code]),
        [['warn', NOTIFY_CODES.FALLBACK]],
      )
      assert.match(entries[0]![2], /cannot address NOTIFY_SOCKET=@/)
      n.ready('abstract ok')
      assert.equal(await inbox.next(5000), 'READY=1\nSTATUS=abstract ok')
      n.watchdog()
      assert.equal(await inbox.next(5000), 'WATCHDOG=1')
      receiver.kill()
    },
  )
})
