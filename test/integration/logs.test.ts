import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import {
  apiYaml, childPids, freePort, hostYaml, serviceYaml, sleep, startGateway, startUpstream, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

/*
 * Access and runtime logs of the real gateway (primary + 2 workers) in a configured
 * directory: one line per exchange with the right fields, rejected and unrouted requests
 * included, runtime lines with level/code/msg, SIGUSR1 after logrotate's move, the
 * access log switched off by a reload, and no credential or configured secret anywhere.
 */
const SECRET = 'upstream-S3CRET-value'
const AUTH = 'Bearer tok-AUTH-123'
const COOKIE = 'sid=cookie-XYZ-789'
const HEADER_KEY = 'k-header-secret'
const QUERY_KEY = 'k-query-secret'
const WRONG_KEY = 'wrong-key-555'
const hex = (key: string) => createHash('sha256').update(key).digest('hex')

type Line = Record<string, unknown>

describe('logs of the real gateway', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let dir: string
  let logDir: string
  let sent = 0

  function config(opts: { accessLogs?: boolean; drainTimeoutMs?: number } = {}): string {
    return apiYaml('shop', port, '/shop', `    all:
      service: s
      routes: [{ rules: [{ path: (/items/.*) }] }]
`, `  policies:
    - policyRef: { name: header-injection }
      config: { requestHeaders: { x-upstream-auth: "\${env:GH_TEST_UPSTREAM_SECRET}" } }
`) + '---\n' + apiYaml('locked', port, '/locked', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: api-key }
      config: { keys: [{ name: billing, keyHash: "sha256:${hex(HEADER_KEY)}" }] }
`) + '---\n' + apiYaml('q', port, '/q', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: api-key }
      config: { in: query, name: key, keys: [{ name: reports, keyHash: "sha256:${hex(QUERY_KEY)}" }] }
`) + '---\n' + serviceYaml('s', [up.origin]) + '---\n' + hostYaml(`  drainTimeoutMs: ${opts.drainTimeoutMs ?? 5000}
  # Metrics off: the access log must carry upstream timings without another subscriber.
  metrics: { enabled: false }
  logging:
    runtimeLogs: { logLevel: info }
    accessLogs: { enabled: ${opts.accessLogs ?? true}, includeQuery: true }
    directory: ${logDir}
`)
  }

  const accessFile = () => path.join(logDir, 'access.log')
  const runtimeFile = () => path.join(logDir, 'runtime.log')
  function read(file: string): Line[] {
    if (!fs.existsSync(file)) return []
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
  }
  const waitLines = (file: string, count: number) =>
    waitFor(`${count} lines in ${path.basename(file)}`, () => { const l = read(file); return l.length >= count ? l : undefined }, 10_000)

  async function call(pathAndQuery: string, opts: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}) {
    sent++
    const r = await request(`http://127.0.0.1:${port}${pathAndQuery}`, {
      method: opts.method ?? 'GET',
      headers: { 'user-agent': 'gh-test/1.0', authorization: AUTH, cookie: COOKIE, ...opts.headers },
      body: opts.body,
      reset: true, // a new connection each time, so the kernel spreads requests over both workers
    })
    const text = await r.body.text()
    return { status: r.statusCode, text, length: Buffer.byteLength(text) }
  }

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    dir = tempDir()
    logDir = path.join(dir, 'logs')
    writeConfig(dir, { 'gw.yaml': config() })
    gw = await startGateway(dir, { env: { GH_TEST_UPSTREAM_SECRET: SECRET } })
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  test('N proxied requests give N access lines whose request ids are the ones the upstream received', async () => {
    const before = up.requests.length
    const lengths = new Map<string, number>()
    for (let i = 0; i < 20; i++) {
      const r = await call(`/shop/items/${i}?page=${i}`, { headers: { traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` } })
      assert.equal(r.status, 200)
      lengths.set(`/shop/items/${i}`, r.length)
    }
    const post = await call('/shop/items/post', { method: 'POST', body: 'x'.repeat(1234), headers: { 'content-type': 'text/plain' } })
    assert.equal(post.status, 200)
    lengths.set('/shop/items/post', post.length)
    const upstreamIds = new Set(up.requests.slice(before).map((r) => r.headers['x-request-id'] as string))
    assert.equal(up.requests.slice(before).every((r) => r.headers['x-upstream-auth'] === SECRET), true)

    const lines = await waitLines(accessFile(), 21)
    assert.equal(lines.length, 21)
    for (const l of lines) {
      assert.equal(l.api, 'shop')
      assert.equal(l.route, 'shop/all#0')
      assert.equal(l.status, 200)
      assert.equal(l.upstream, up.origin)
      assert.equal(l.upstreamStatus, 200)
      assert.equal(l.clientIp, '127.0.0.1')
      assert.equal(l.userAgent, 'gh-test/1.0')
      assert.equal(l.bytesOut, lengths.get(l.path as string), `bytesOut of ${String(l.path)}`)
      assert.ok(upstreamIds.has(l.requestId as string), `request id ${String(l.requestId)} reached the upstream`)
      assert.equal(typeof l.durationMs, 'number')
      assert.equal(typeof l.upstreamMs, 'number')
      assert.equal(typeof l.upstreamHeadersMs, 'number')
      assert.ok((l.durationMs as number) >= (l.upstreamMs as number))
      assert.ok(Math.abs(Date.parse(l.time as string) - Date.now()) < 60_000)
      assert.equal(l.decidedBy, null)
      assert.equal(l.outcome, null)
    }
    const get = lines.find((l) => l.path === '/shop/items/3')!
    assert.equal(get.method, 'GET')
    assert.equal(get.query, 'page=3')
    assert.equal(get.traceId, 'ab'.repeat(16))
    assert.equal(get.bytesIn, 0)
    const p = lines.find((l) => l.method === 'POST')!
    assert.equal(p.bytesIn, 1234)
    assert.equal(new Set(lines.map((l) => l.requestId)).size, 21)
  })

  test('rejected and unrouted requests are logged with the policy that decided and the outcome', async () => {
    const start = read(accessFile()).length
    assert.equal((await call('/locked/a')).status, 401)
    assert.equal((await call('/locked/b', { headers: { 'x-api-key': WRONG_KEY } })).status, 401)
    assert.equal((await call('/locked/c', { headers: { 'x-api-key': HEADER_KEY } })).status, 200)
    assert.equal((await call(`/q/d?a=1&key=${QUERY_KEY}`)).status, 200)
    assert.equal((await call(`/q/e?key=${WRONG_KEY}&token=t0k`)).status, 401)
    assert.equal((await call('/shop/nothing')).status, 404)
    const lines = (await waitLines(accessFile(), start + 6)).slice(start)
    const by = (p: string) => lines.find((l) => l.path === p)!
    assert.equal(by('/locked/a').status, 401)
    assert.equal(by('/locked/a').decidedBy, 'api-key')
    assert.equal(by('/locked/a').outcome, 'GH_ERR_AUTH_MISSING')
    assert.equal(by('/locked/a').upstream, null)
    assert.equal(by('/locked/b').outcome, 'GH_ERR_AUTH_INVALID')
    assert.equal(by('/locked/c').status, 200)
    assert.equal(by('/locked/c').consumer, 'billing')
    assert.equal(by('/q/d').consumer, 'reports')
    assert.equal(by('/q/d').query, 'a=1') // the policy removed the key before the upstream (and the log)
    assert.equal(by('/q/e').query, 'key=[REDACTED]&token=[REDACTED]')
    assert.equal(by('/q/e').decidedBy, 'api-key')
    assert.equal(by('/shop/nothing').status, 404)
    assert.equal(by('/shop/nothing').route, null)
    assert.equal(by('/shop/nothing').outcome, 'GH_ERR_ROUTE_NOT_FOUND')
  })

  test('runtime log lines of the primary and the workers land in runtime.log with level, code and msg', async () => {
    const lines = await waitFor('GH_STARTED in runtime.log', () => {
      const l = read(runtimeFile())
      return l.some((x) => x.code === 'GH_STARTED') ? l : undefined
    }, 10_000)
    for (const l of lines) {
      assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level as string))
      assert.equal(typeof l.code, 'string')
      assert.equal(typeof l.msg, 'string')
      assert.equal(typeof l.pid, 'number')
      assert.ok(!Number.isNaN(Date.parse(l.time as string)))
    }
    assert.ok(lines.some((l) => l.component === 'primary' && l.code === 'GH_WORKER_READY'))
    // Nothing after start-up went to stderr instead.
    assert.equal(gw.output().includes('GH_STARTED'), false)
  })

  test('SIGUSR1 after logrotate moved the files: new lines go to new files, the old ones stay complete', async () => {
    const oldAccess = read(accessFile()).length
    fs.renameSync(accessFile(), `${accessFile()}.1`)
    fs.renameSync(runtimeFile(), `${runtimeFile()}.1`)
    gw.proc.kill('SIGUSR1')
    // `systemctl kill -s USR1` signals every process of the unit: workers handle it too.
    for (const pid of childPids(gw.proc.pid!)) process.kill(pid, 'SIGUSR1')
    await waitFor('new access.log and runtime.log', () => fs.existsSync(accessFile()) && fs.existsSync(runtimeFile()), 5000)
    await sleep(300) // both workers got the primary's gh:reopen-logs
    for (let i = 0; i < 10; i++) assert.equal((await call(`/shop/items/after-${i}`)).status, 200)
    writeConfig(dir, { 'gw.yaml': config({ drainTimeoutMs: 6000 }) })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200)
    const fresh = await waitLines(accessFile(), 10)
    assert.equal(fresh.length, 10)
    assert.ok(fresh.every((l) => String(l.path).startsWith('/shop/items/after-')))
    const old = read(`${accessFile()}.1`)
    assert.equal(old.length, oldAccess)
    assert.equal(old.some((l) => String(l.path).includes('after-')), false)
    await waitFor('GH_RELOADED in the new runtime.log', () => read(runtimeFile()).some((l) => l.code === 'GH_RELOADED'), 5000)
    assert.equal(read(`${runtimeFile()}.1`).some((l) => l.code === 'GH_RELOADED'), false)
    assert.ok(read(`${runtimeFile()}.1`).some((l) => l.code === 'GH_STARTED'))
    // Every process handles SIGUSR1 itself: Node's default (start the inspector) never runs.
    assert.equal(gw.output().includes('Debugger listening'), false)
  })

  test('accessLogs.enabled: false on reload stops the access log', async () => {
    const count = read(accessFile()).length
    writeConfig(dir, { 'gw.yaml': config({ accessLogs: false, drainTimeoutMs: 6000 }) })
    const rl = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(rl.status, 200)
    for (let i = 0; i < 5; i++) assert.equal((await call(`/shop/items/off-${i}`)).status, 200)
    await sleep(400)
    assert.equal(read(accessFile()).length, count)
  })

  test('no credential sent by clients and no configured secret appears in any log file or the output', async () => {
    // Everything is on disk once the gateway has stopped (exit flush).
    const r = await gw.stop()
    assert.equal(r.code, 0)
    const files = fs.readdirSync(logDir)
    assert.deepEqual(files.sort(), ['access.log', 'access.log.1', 'runtime.log', 'runtime.log.1'])
    const all = files.map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('') + gw.output()
    for (const s of [SECRET, 'tok-AUTH-123', 'cookie-XYZ-789', HEADER_KEY, QUERY_KEY, WRONG_KEY]) {
      assert.equal(all.includes(s), false, `${s} appears in the logs`)
    }
    // Every proxied or rejected request made while the access log was on has its line.
    const logged = read(accessFile()).length + read(`${accessFile()}.1`).length
    assert.equal(logged, sent - 5)
    assert.ok(read(runtimeFile()).some((l) => l.code === 'GH_STOPPED'))
  })
})
