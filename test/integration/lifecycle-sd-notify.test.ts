import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import path from 'node:path'
import { request } from 'undici'
import {
  apiYaml, childPids, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, waitFor, waitGone, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

interface DgramServer {
  on(event: 'message', listener: (msg: Buffer) => void): unknown
  on(event: 'error', listener: (err: Error) => void): unknown
  bind(path: string): void
  close(): void
}

function config(port: number, upstream: string, gen: string): Record<string, string> {
  return {
    'api.yaml': apiYaml('n', port, '/n', `    main:
      service: echo
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config: { responseHeaders: { x-gen: "${gen}" } }
`),
    'svc.yaml': serviceYaml('echo', [upstream]),
    'host.yaml': hostYaml(),
  }
}

describe('systemd notifications over a real NOTIFY_SOCKET', () => {
  let sock: DgramServer
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string
  let workers: number[] = []
  const messages: string[] = []
  /** Status of a request sent the moment READY=1 arrived. */
  let firstRequest: Promise<number> | null = null

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir('gh-notify-')
    const socketPath = path.join(dir, 'notify.sock')
    sock = (createRequire(import.meta.url)('unix-dgram') as { createSocket(t: 'unix_dgram'): DgramServer }).createSocket('unix_dgram')
    sock.on('error', () => {})
    sock.on('message', (m) => {
      const text = m.toString()
      messages.push(text)
      if (firstRequest === null && /^READY=1$/m.test(text)) {
        firstRequest = request(`http://127.0.0.1:${port}/n/first`).then(async (r) => { await r.body.text(); return r.statusCode }, () => 0)
      }
    })
    sock.bind(socketPath)
    const conf = path.join(dir, 'conf.d')
    writeConfig(conf, config(port, up.origin, 'A'))
    dir = conf
    gw = await startGateway(conf, { env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '1000000', WATCHDOG_PID: '' } })
    workers = childPids(gw.proc.pid!)
  })

  after(async () => {
    await gw?.stop('SIGKILL')
    await waitGone(workers).catch(() => {})
    sock?.close()
    await up?.close()
  })

  const indexOf = (re: RegExp, from = 0): number => messages.findIndex((m, i) => i >= from && re.test(m))

  test('READY=1 with a STATUS= line arrives once the workers listen', async () => {
    await waitFor('READY=1', () => indexOf(/^READY=1$/m) >= 0, 10_000)
    const ready = messages[indexOf(/^READY=1$/m)]!
    assert.match(ready, /^STATUS=2 workers ready, config [0-9a-f]{16}$/m)
    assert.equal(await firstRequest, 200, 'a request sent the moment READY=1 arrived is served')
    assert.equal(indexOf(/^(RELOADING|STOPPING)=1$/m), -1)
  })

  test('WATCHDOG=1 is sent when WATCHDOG_USEC is set and WATCHDOG_PID is not', async () => {
    await waitFor('two WATCHDOG=1', () => messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 10_000)
  })

  test('a reload sends RELOADING=1 with MONOTONIC_USEC, then READY=1', async () => {
    const from = messages.length
    writeConfig(dir, config(port, up.origin, 'B'))
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200)
    await waitFor('READY=1 after the reload', () => indexOf(/^READY=1$/m, from) >= 0, 10_000)
    const reloading = indexOf(/^RELOADING=1$/m, from)
    assert.ok(reloading >= 0, messages.slice(from).join(' | '))
    const usec = /^MONOTONIC_USEC=(\d+)$/m.exec(messages[reloading]!)
    assert.ok(usec !== null, messages[reloading])
    assert.ok(BigInt(usec[1]!) > 0n)
    assert.ok(indexOf(/^READY=1$/m, from) > reloading, 'READY=1 follows RELOADING=1')
  })

  test('SIGTERM sends STOPPING=1, and no READY=1 follows even with a reload under way', async () => {
    writeConfig(dir, config(port, up.origin, 'C'))
    const from = messages.length
    const reload = fetch(`${gw.admin}/reload`, { method: 'POST' }).catch(() => null)
    gw.proc.kill('SIGTERM')
    const exit = await gw.exited
    assert.deepEqual(exit, { code: 0, signal: null })
    await reload
    await waitFor('STOPPING=1', () => indexOf(/^STOPPING=1$/m, from) >= 0, 5_000)
    const stopping = indexOf(/^STOPPING=1$/m, from)
    assert.equal(indexOf(/^READY=1$/m, stopping), -1, messages.slice(from).join(' | '))
    await waitGone(workers)
  })
})
