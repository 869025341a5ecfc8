/**
 * Prometheus metrics through the real gateway (primary + 2 workers): exact counters for
 * known traffic summed over the workers, upstream error kinds, policy decisions, bounded
 * labels under 10,000 distinct paths and keys, reload and restart counters, a hung worker
 * that does not hang the scrape, the dedicated metrics address, the exposition format
 * (promtool when installed, and a strict check of our own always), and metrics off.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { Client, Pool } from 'undici'
import {
  apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, stopAndCheck, tempDir, waitFor, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

const hex = (s: string): string => createHash('sha256').update(s).digest('hex')

/** One request on a fresh connection (so the kernel spreads them over both workers). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Samples of the exposition text: `name{k="v",…}` (labels sorted) → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m, `not a sample line: ${line}`)
    const labels = m[2] === undefined || m[2] === '' ? [] : [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}="${x[2]}"`).sort()
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]))
  }
  return out
}

function key(name: string, labels: Record<string, string> = {}): string {
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',')}}`
}

/**
 * The exposition format, strictly: HELP and TYPE once per family before its samples, valid
 * names, label syntax, numeric values (NaN in any case, as Go's ParseFloat reads it; prom-client
 * writes "Nan"), counters ending in _total, suffixed samples only for histograms.
 */
function checkExposition(text: string): void {
  const types = new Map<string, string>()
  const helps = new Set<string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (m) { assert.ok(!helps.has(m[1]!), `HELP twice: ${m[1]}`); helps.add(m[1]!); continue }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (m) {
      assert.ok(!types.has(m[1]!), `TYPE twice: ${m[1]}`)
      types.set(m[1]!, m[2]!)
      if (m[2] === 'counter') assert.match(m[1]!, /_total$/, `counter without _total: ${m[1]}`)
      else assert.doesNotMatch(m[1]!, /_total$/, `non-counter with _total: ${m[1]}`)
      continue
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? ([-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|Inf)|[nN][aA][nN])$/.exec(line)
    assert.ok(m, `malformed line: ${line}`)
    const name = m[1]!
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    assert.ok(types.has(family), `sample before its TYPE: ${line}`)
    assert.ok(helps.has(family), `no HELP for ${family}`)
    if (family !== name) assert.equal(types.get(family), 'histogram', `suffixed sample of a ${types.get(family)}: ${line}`)
  }
}

function promtool(text: string): { ran: boolean; ok: boolean; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (r.error !== undefined) return { ran: false, ok: false, out: String(r.error) }
  return { ran: true, ok: r.status === 0 && r.stdout.trim() === '' && r.stderr.trim() === '', out: r.stdout + r.stderr }
}

async function scrape(url: string): Promise<{ status: number; type: string; text: string }> {
  const r = await fetch(url)
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() }
}

describe('metrics', () => {
  let gw: Gateway
  let up: Upstream
  let slow: Upstream
  let err5: Upstream
  let port: number
  let metricsPort: number
  let dir: string
  let files: Record<string, string>
  const scrapeAdmin = async (): Promise<Map<string, number>> => {
    const r = await scrape(`${gw.admin}/metrics`)
    assert.equal(r.status, 200, r.text)
    return samples(r.text)
  }

  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    slow = await startUpstream((_req, res) => { setTimeout(() => res.end('late'), 1500) })
    err5 = await startUpstream((_req, res) => { res.statusCode = 500; res.end('boom') })
    const closed = await freePort() // nothing listens there: refused
    port = await freePort()
    metricsPort = await freePort()
    dir = tempDir()
    files = {
      'api.yaml': apiYaml('a', port, '/a', `    x:
      service: up
      routes: [{ rules: [{ path: /x }] }, { rules: [{ path: (/keys/.*) }] }, { rules: [{ path: /limited }] }]
    d:
      service: dead
      routes: [{ rules: [{ path: /dead }] }]
    s:
      service: slow
      routes: [{ rules: [{ path: /slow }] }]
    e:
      service: err5
      routes: [{ rules: [{ path: /err }] }]
`, `  policies:
    - policyRef: { name: api-key }
      config: { keys: [{ name: ops, keyHash: "sha256:${hex('k-ops')}" }] }
      rules: [{ path: (/keys/.*) }]
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 2, timePeriodInMilliseconds: 3600000 }] }
      rules: [{ path: /limited }]
`),
      'svc.yaml': serviceYaml('up', [up.origin]) + '---\n' + serviceYaml('dead', [`http://127.0.0.1:${closed}`]) + '---\n' +
        serviceYaml('slow', [slow.origin], '  timeouts: { responseMs: 300 }\n') + '---\n' + serviceYaml('err5', [err5.origin]),
      'host.yaml': hostYaml(`  metrics: { address: "http://127.0.0.1:${metricsPort}" }\n`),
    }
    writeConfig(dir, files)
    gw = await startGateway(dir)
  })

  after(async () => {
    await stopAndCheck(gw)
    await Promise.all([up?.close(), slow?.close(), err5?.close()])
  })

  test('requests are counted by api, route, method and status class, summed over both workers', async () => {
    const before = await scrapeAdmin()
    const statuses = await Promise.all(Array.from({ length: 20 }, () => get(port, '/a/x')))
    assert.deepEqual(new Set(statuses), new Set([200]))
    assert.equal(await get(port, '/a/nowhere'), 404)
    const m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_requests_total', { api: 'a', route: 'a/x#0', method: 'GET', status_class: '2xx' })), 20)
    assert.equal(m.get(key('gatehouse_requests_total', { api: 'a', route: 'none', method: 'GET', status_class: '4xx' })), 1)
    assert.equal(m.get(key('gatehouse_request_duration_seconds_count', { api: 'a', route: 'a/x#0' })), 20)
    assert.equal(m.get(key('gatehouse_request_duration_seconds_bucket', { api: 'a', route: 'a/x#0', le: '+Inf' })), 20)
    assert.equal(m.get(key('gatehouse_response_size_bytes_sum', { api: 'a', route: 'a/x#0' })), 40) // "ok" × 20
    assert.equal(m.get(key('gatehouse_request_size_bytes_count', { api: 'a', route: 'a/x#0' })), 20)
    assert.equal(m.get(key('gatehouse_upstream_request_duration_seconds_count', { service: 'up' })), 20)
    assert.equal(m.get(key('gatehouse_requests_in_flight')), 0)
    assert.equal(m.get(key('gatehouse_scrape_workers', { result: 'answered' })), 2)
    assert.equal(before.get(key('gatehouse_scrape_workers', { result: 'answered' })), 2)
    // Node process and event-loop metrics: one series per process.
    for (const p of ['primary', 'worker-0', 'worker-1']) {
      assert.ok(m.has(key('process_resident_memory_bytes', { process: p })), p)
      assert.ok(m.has(key('nodejs_eventloop_lag_p99_seconds', { process: p })), p)
    }
    assert.equal(m.get(key('gatehouse_workers_ready')), 2)
  })

  test('upstream errors are counted by service and kind: refused, timeout, 5xx; a client abort is not one', async () => {
    assert.deepEqual(await Promise.all([1, 2, 3].map(() => get(port, '/a/dead'))), [502, 502, 502])
    assert.deepEqual(await Promise.all([1, 2].map(() => get(port, '/a/slow'))), [504, 504])
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map(() => get(port, '/a/err'))), [500, 500, 500, 500])
    // A client that leaves while the upstream is still thinking.
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(`GET /a/slow HTTP/1.1\r\nHost: x\r\n\r\n`))
      setTimeout(() => { s.destroy(); resolve() }, 100)
    })
    await waitFor('the aborted request to end', async () => (await scrapeAdmin()).get(key('gatehouse_client_aborts_total', { api: 'a', route: 'a/s#0' })) === 1, 5000)
    const m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_upstream_errors_total', { service: 'dead', kind: 'refused' })), 3)
    assert.equal(m.get(key('gatehouse_upstream_errors_total', { service: 'slow', kind: 'timeout' })), 2)
    assert.equal(m.get(key('gatehouse_upstream_errors_total', { service: 'err5', kind: '5xx' })), 4)
    assert.equal(m.get(key('gatehouse_requests_total', { api: 'a', route: 'a/d#0', method: 'GET', status_class: '5xx' })), 3)
    assert.equal(m.get(key('gatehouse_requests_total', { api: 'a', route: 'a/s#0', method: 'GET', status_class: 'none' })), 1)
    assert.equal(m.get(key('gatehouse_upstream_errors_total', { service: 'up', kind: 'refused' })), undefined)
  })

  test('policy decisions are counted by api, policy and result', async () => {
    // One keep-alive connection: one worker, so the rate limit of 2 is exact.
    const c = new Client(`http://127.0.0.1:${port}`)
    const codes: number[] = []
    for (let i = 0; i < 5; i++) {
      const r = await c.request({ method: 'GET', path: '/a/limited' })
      await r.body.text()
      codes.push(r.statusCode)
    }
    await c.close()
    assert.deepEqual(codes, [200, 200, 429, 429, 429])
    assert.equal(await get(port, '/a/keys/1', { 'x-api-key': 'k-ops' }), 200)
    assert.equal(await get(port, '/a/keys/2', { 'x-api-key': 'wrong' }), 401)
    const m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_policy_decisions_total', { api: 'a', policy: 'rate-limit', result: 'admitted' })), 2)
    assert.equal(m.get(key('gatehouse_policy_decisions_total', { api: 'a', policy: 'rate-limit', result: 'rejected' })), 3)
    assert.equal(m.get(key('gatehouse_policy_decisions_total', { api: 'a', policy: 'api-key', result: 'admitted' })), 1)
    assert.equal(m.get(key('gatehouse_policy_decisions_total', { api: 'a', policy: 'api-key', result: 'rejected' })), 1)
    assert.equal(m.get(key('gatehouse_ratelimit_store_errors_total')), 0)
    assert.equal(m.get(key('gatehouse_ratelimit_fallbacks_total')), 0)
  })

  test('10,000 distinct paths, queries and API keys add no series', async () => {
    const marker = randomBytes(6).toString('hex')
    const series = (m: Map<string, number>): string[] => [...m.keys()].filter((k) => k.startsWith('gatehouse_')).sort()
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16 })
    const send = async (i: number): Promise<void> => {
      const r = await pool.request({
        method: 'GET',
        path: i % 2 === 0 ? `/a/keys/${marker}-${i}?q=${i}` : `/a/${marker}-${i}`,
        headers: { 'x-api-key': `${marker}-key-${i}` },
      })
      await r.body.text()
    }
    await send(0); await send(1) // one of each shape first: their series exist before
    const seen = series(await scrapeAdmin())
    let next = 2
    await Promise.all(Array.from({ length: 32 }, async () => { while (next < 10_000) await send(next++) }))
    await pool.close()
    const text = (await scrape(`${gw.admin}/metrics`)).text
    assert.doesNotMatch(text, new RegExp(marker))
    const m = samples(text)
    assert.deepEqual(series(m), seen)
    assert.equal(m.get(key('gatehouse_policy_decisions_total', { api: 'a', policy: 'api-key', result: 'rejected' })), 1 + 5000)
    assert.equal(m.get(key('gatehouse_requests_total', { api: 'a', route: 'none', method: 'GET', status_class: '4xx' })), 1 + 5000)
  })

  test('the exposition passes promtool check metrics (when installed) and a strict format check', async (t) => {
    const { text, type } = await scrape(`${gw.admin}/metrics`)
    assert.match(type, /^text\/plain; version=0\.0\.4/)
    checkExposition(text)
    const p = promtool(text)
    if (!p.ran) { t.skip('promtool not installed (Debian package prometheus): strict check only'); return }
    assert.ok(p.ok, `promtool check metrics:\n${p.out}`)
  })

  test('the dedicated metrics address serves the same text without the admin API', async () => {
    const a = await scrape(`${gw.admin}/metrics`)
    const b = await scrape(`http://127.0.0.1:${metricsPort}/metrics`)
    assert.equal(b.status, 200)
    assert.equal(b.type, a.type)
    const pick = (t: string): string => t.split('\n').filter((l) => l.startsWith('gatehouse_requests_total') || l.startsWith('gatehouse_upstream_errors_total')).join('\n')
    assert.equal(pick(b.text), pick(a.text))
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/status`)).status, 404)
  })

  test('config reloads are counted by result and the config version is an info metric', async () => {
    const v0 = (await gw.status()).configVersion
    let m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_config_info', { version: v0 })), 1)
    assert.equal((await fetch(`${gw.admin}/reload`, { method: 'POST' })).status, 200) // unchanged
    writeConfig(dir, { ...files, 'bad.yaml': 'kind: Nope\n' })
    assert.equal((await fetch(`${gw.admin}/reload`, { method: 'POST' })).status, 400)
    writeConfig(dir, { ...files, 'host.yaml': files['host.yaml']!.replace('intervalMs: 250', 'intervalMs: 200') })
    assert.equal((await fetch(`${gw.admin}/reload`, { method: 'POST' })).status, 200)
    const v1 = (await gw.status()).configVersion
    assert.notEqual(v1, v0)
    m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_config_reloads_total', { result: 'unchanged' })), 1)
    assert.equal(m.get(key('gatehouse_config_reloads_total', { result: 'invalid' })), 1)
    assert.equal(m.get(key('gatehouse_config_reloads_total', { result: 'success' })), 1)
    assert.equal(m.get(key('gatehouse_config_reloads_total', { result: 'failed' })), 0)
    assert.equal(m.get(key('gatehouse_config_info', { version: v1 })), 1)
    assert.equal(m.get(key('gatehouse_config_info', { version: v0 })), undefined)
    assert.ok([...m.keys()].some((k) => k.startsWith('gatehouse_build_info{') && k.includes('nodejs_version="')))
  })

  test('a hung worker does not hang the scrape, and worker restarts are counted', async () => {
    const workers = (await gw.status()).workers
    const victim = workers[0]!.pid
    process.kill(victim, 'SIGSTOP')
    try {
      const t0 = Date.now()
      const m = await scrapeAdmin()
      assert.ok(Date.now() - t0 < 4000, `scrape took ${Date.now() - t0} ms`)
      assert.equal(m.get(key('gatehouse_scrape_workers', { result: 'missing' })), 1)
      assert.equal(m.get(key('gatehouse_scrape_workers', { result: 'answered' })), 1)
    } finally {
      // The supervisor replaces it after missed heartbeats; if it has not yet, finish it.
      await waitFor('the hung worker replaced', async () => (await gw.status()).workers.every((w) => w.pid !== victim && w.state === 'ready'), 15_000)
        .catch(() => { try { process.kill(victim, 'SIGKILL') } catch {} })
    }
    const other = (await gw.status()).workers.find((w) => w.pid !== victim)!.pid
    process.kill(other, 'SIGKILL')
    await waitFor('both workers ready again', async () => {
      const s = await gw.status()
      return s.workers.every((w) => w.state === 'ready' && w.pid !== other && w.pid !== victim) && s.workers.reduce((n, w) => n + w.restarts, 0) === 2
    }, 20_000)
    const m = await scrapeAdmin()
    assert.equal(m.get(key('gatehouse_worker_restarts_total')), 2)
    assert.equal(m.get(key('gatehouse_scrape_workers', { result: 'answered' })), 2)
  })
})

describe('metrics disabled', () => {
  let gw: Gateway
  let up: Upstream

  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    const port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'api.yaml': apiYaml('a', port, '', `    x:
      service: up
      routes: [{ rules: [{ path: (/.*) }] }]
`),
      'svc.yaml': serviceYaml('up', [up.origin]),
      'host.yaml': hostYaml('  metrics: { enabled: false }\n'),
    })
    gw = await startGateway(dir)
    assert.equal(await get(port, '/x'), 200)
  })

  after(async () => {
    await stopAndCheck(gw)
    await up?.close()
  })

  test('GET /metrics answers 404 when metrics are disabled', async () => {
    const r = await fetch(`${gw.admin}/metrics`)
    assert.equal(r.status, 404)
    assert.match(await r.text(), /metrics are disabled/)
  })
})
