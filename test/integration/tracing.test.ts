import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import zlib from 'node:zlib'
import { request } from 'undici'
import { apiYaml, freePort, serviceYaml, sleep, startGateway, startUpstream, tempDir, waitFor, type Gateway, type Upstream } from '../helpers/gateway.js'

/*
 * Tracing through the real gateway (built dist/, one worker) and a real OTLP/HTTP JSON
 * receiver on 127.0.0.1. One gateway; the tracing settings change by reload between the
 * groups, which also covers re-subscription on a snapshot.
 */

interface OtlpValue { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
interface OtlpKv { key: string; value: OtlpValue }
interface Span {
  traceId: string
  spanId: string
  parentSpanId?: string
  traceState?: string
  name: string
  kind: number
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes: Record<string, string | number | boolean | undefined>
  events: Array<{ name: string; attributes: Record<string, string | number | boolean | undefined> }>
  status: { code?: number; message?: string }
  resource: Record<string, string | number | boolean | undefined>
}

const SERVER = 2
const CLIENT = 3
const STATUS_ERROR = 2

function value(v: OtlpValue): string | number | boolean | undefined {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.boolValue !== undefined) return v.boolValue
  return v.doubleValue
}

function attrs(kvs: OtlpKv[] | undefined): Record<string, string | number | boolean | undefined> {
  const o: Record<string, string | number | boolean | undefined> = {}
  for (const kv of kvs ?? []) o[kv.key] = value(kv.value)
  return o
}

interface Receiver { port: number; spans: Span[]; posts: number; contentTypes: string[]; close(): Promise<void> }

/** A minimal OTLP/HTTP receiver: POST /v1/traces with JSON, decoded into flat spans. */
async function startReceiver(): Promise<Receiver> {
  const rx: Receiver = { port: 0, spans: [], posts: 0, contentTypes: [], close: async () => {} }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body: Buffer = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body)
      rx.posts++
      rx.contentTypes.push(String(req.headers['content-type']))
      if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return }
      const msg = JSON.parse(body.toString()) as { resourceSpans: Array<{ resource: { attributes: OtlpKv[] }; scopeSpans: Array<{ spans: Array<Omit<Span, 'attributes' | 'events' | 'resource'> & { attributes: OtlpKv[]; events?: Array<{ name: string; attributes: OtlpKv[] }> }> }> }> }
      for (const rs of msg.resourceSpans) {
        const resource = attrs(rs.resource.attributes)
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            rx.spans.push({
              ...s,
              attributes: attrs(s.attributes),
              events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
              resource,
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  rx.port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
  rx.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  return rx
}

const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

function parseTp(v: unknown): { traceId: string; parentId: string; flags: string } {
  assert.equal(typeof v, 'string', 'the upstream received a traceparent')
  const m = TP.exec(v as string)
  assert.ok(m !== null, `valid traceparent: ${String(v)}`)
  assert.notEqual(m[1], '0'.repeat(32))
  assert.notEqual(m[2], '0'.repeat(16))
  return { traceId: m[1]!, parentId: m[2]!, flags: m[3]! }
}

describe('tracing', () => {
  let gw: Gateway
  let up: Upstream
  let rx: Receiver
  let port: number
  let dir: string
  let deadPort: number

  function config(tracing: string, logging = '{ accessLogs: { enabled: false } }'): Record<string, string> {
    return {
      'api.yaml': apiYaml('t', port, '/t', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`) + '---\n' + apiYaml('c', port, '/c', `    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
`, `  policies:
    - policyRef: { name: cors }
      config: { allowOrigins: ["https://app.example"], rejectUnknownOrigins: true }
`) + '---\n' + serviceYaml('s', [up.origin]),
      'host.yaml': `apiVersion: gatehouse/v1
kind: Configuration
metadata: { name: host }
spec:
  workers: 1
  heartbeat: { intervalMs: 250, misses: 8 }
  logging: ${logging}
${tracing}`,
    }
  }

  async function apply(files: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(files)) {
      const tmp = path.join(dir, `.${name}.tmp`)
      fs.writeFileSync(tmp, text)
      fs.renameSync(tmp, path.join(dir, name))
    }
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    assert.equal(r.status, 200, await r.text())
  }

  async function call(p: string, headers: Record<string, string> = {}): Promise<{ status: number; up: Upstream['requests'][number] | undefined; ms: number }> {
    const n = up.requests.length
    const t0 = performance.now()
    const r = await request(`http://127.0.0.1:${port}${p}`, { headers })
    await r.body.text()
    const ms = performance.now() - t0
    return { status: r.statusCode, up: up.requests.length > n ? up.requests[up.requests.length - 1] : undefined, ms }
  }

  function spansOf(traceId: string): Span[] {
    return rx.spans.filter((s) => s.traceId === traceId)
  }

  async function waitSpans(traceId: string, n: number): Promise<Span[]> {
    return await waitFor(`${n} spans of trace ${traceId}`, () => { const s = spansOf(traceId); return s.length >= n ? s : undefined }, 10_000, 50)
  }

  before(async () => {
    up = await startUpstream()
    rx = await startReceiver()
    port = await freePort()
    deadPort = await freePort() // nothing listens there
    dir = tempDir('gh-tracing-')
    fs.mkdirSync(dir, { recursive: true })
    for (const [name, text] of Object.entries(config(`  tracing:
    endpoint: http://127.0.0.1:${rx.port}
    sampling: 1
    serviceName: gw-test
    resourceAttributes: { deployment.environment.name: test }
    headers: { x-collector-token: abc }
`))) fs.writeFileSync(path.join(dir, name), text)
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    await rx?.close()
  })

  test('sampling 1: a server span and a client span per request, and the upstream continues the client span', async () => {
    const r = await call('/t/items/42', { 'user-agent': 'tracing-test/1' })
    assert.equal(r.status, 200)
    const tp = parseTp(r.up?.headers.traceparent)
    assert.equal(tp.flags, '01')
    const spans = await waitSpans(tp.traceId, 2)
    assert.equal(spans.length, 2)
    const server = spans.find((s) => s.kind === SERVER)!
    const client = spans.find((s) => s.kind === CLIENT)!
    assert.ok(server && client, 'one SERVER and one CLIENT span')
    // tree: server is the root; client is its child; the upstream's parent is the client span
    assert.ok(server.parentSpanId === undefined || server.parentSpanId === '', 'server span is a root')
    assert.equal(client.parentSpanId, server.spanId)
    assert.equal(tp.parentId, client.spanId)
    assert.notEqual(client.spanId, server.spanId)
    // server attributes (stable HTTP semantic conventions)
    assert.equal(server.name, 'GET t/all#0')
    assert.equal(server.attributes['http.request.method'], 'GET')
    assert.equal(server.attributes['url.path'], '/t/items/42')
    assert.equal(server.attributes['url.scheme'], 'http')
    assert.equal(server.attributes['http.route'], 't/all#0')
    assert.equal(server.attributes['http.response.status_code'], 200)
    assert.equal(server.attributes['server.address'], '127.0.0.1')
    assert.equal(server.attributes['server.port'], port)
    assert.equal(server.attributes['client.address'], '127.0.0.1')
    assert.equal(server.attributes['network.protocol.version'], '1.1')
    assert.equal(server.attributes['user_agent.original'], 'tracing-test/1')
    assert.equal(server.attributes['gatehouse.request_id'], r.up?.headers['x-request-id'])
    assert.equal(server.status.code ?? 0, 0)
    // client attributes
    assert.equal(client.name, 'GET')
    assert.equal(client.attributes['http.request.method'], 'GET')
    assert.equal(client.attributes['server.address'], '127.0.0.1')
    assert.equal(client.attributes['server.port'], up.port)
    assert.equal(client.attributes['url.full'], `${up.origin}/items/42`)
    assert.equal(client.attributes['http.response.status_code'], 200)
    // timing: the client span lies inside the server span
    const n = (s: string): bigint => BigInt(s)
    assert.ok(n(server.startTimeUnixNano) <= n(client.startTimeUnixNano))
    assert.ok(n(client.endTimeUnixNano) <= n(server.endTimeUnixNano))
    assert.ok(n(server.endTimeUnixNano) > n(server.startTimeUnixNano))
    const wall = BigInt(Date.now()) * 1_000_000n
    assert.ok(wall - n(server.startTimeUnixNano) < 60_000_000_000n && wall >= n(server.startTimeUnixNano) - 1_000_000_000n, 'epoch timestamps')
    // resource, exporter headers, JSON
    assert.equal(server.resource['service.name'], 'gw-test')
    assert.equal(server.resource['deployment.environment.name'], 'test')
    assert.ok(rx.contentTypes.every((c) => c.startsWith('application/json')))
  })

  test('a sampled incoming traceparent continues its trace; tracestate passes through', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const parent = '00f067aa0ba902b7'
    const r = await call('/t/continue', { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' })
    assert.equal(r.status, 200)
    const tp = parseTp(r.up?.headers.traceparent)
    assert.equal(tp.traceId, traceId)
    assert.equal(tp.flags, '01')
    assert.notEqual(tp.parentId, parent)
    assert.equal(r.up?.headers.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
    const spans = await waitSpans(traceId, 2)
    const server = spans.find((s) => s.kind === SERVER)!
    const client = spans.find((s) => s.kind === CLIENT)!
    assert.equal(server.parentSpanId, parent)
    assert.equal(client.parentSpanId, server.spanId)
    assert.equal(tp.parentId, client.spanId)
    assert.equal(server.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  })

  test('an invalid traceparent starts a new trace and drops its tracestate', async () => {
    const r = await call('/t/bad', { traceparent: '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', tracestate: 'a=b' })
    const tp = parseTp(r.up?.headers.traceparent)
    assert.notEqual(tp.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
    assert.equal(r.up?.headers.tracestate, undefined)
  })

  test('a policy rejection is an ERROR server span with an event naming the policy and the code', async () => {
    const r = await call('/c/x', { origin: 'https://evil.example', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
    assert.equal(r.status, 403)
    assert.equal(r.up, undefined, 'nothing went upstream')
    const [server] = await waitSpans('0af7651916cd43dd8448eb211c80319c', 1)
    await sleep(200)
    assert.equal(spansOf('0af7651916cd43dd8448eb211c80319c').length, 1, 'no client span without an upstream call')
    assert.equal(server!.kind, SERVER)
    assert.equal(server!.status.code, STATUS_ERROR)
    assert.equal(server!.attributes['http.response.status_code'], 403)
    const code = server!.attributes['error.type']
    assert.match(String(code), /^GH_ERR_/)
    const ev = server!.events.find((e) => e.name === 'gatehouse.policy.rejected')
    assert.ok(ev, `event in ${JSON.stringify(server!.events)}`)
    assert.equal(ev.attributes['gatehouse.policy'], 'cors')
    assert.equal(ev.attributes['gatehouse.error.code'], code)
  })

  test('sampling 0: no spans, but the upstream always gets a valid traceparent (parent-based: a sampled caller still wins)', async () => {
    await apply(config(`  tracing:
    endpoint: http://127.0.0.1:${rx.port}/v1/traces
    sampling: 0
`))
    const fresh = await call('/t/a')
    const a = parseTp(fresh.up?.headers.traceparent)
    assert.equal(a.flags, '00')
    const again = await call('/t/a')
    assert.notEqual(parseTp(again.up?.headers.traceparent).traceId, a.traceId, 'a new trace per request')

    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6'
    const cont = await call('/t/b', { traceparent: `00-${traceId}-00f067aa0ba902b7-00`, tracestate: 'k=v' })
    const b = parseTp(cont.up?.headers.traceparent)
    assert.equal(b.traceId, traceId)
    assert.equal(b.flags, '00', 'flags preserved')
    assert.notEqual(b.parentId, '00f067aa0ba902b7', 'a span id of ours')
    assert.equal(cont.up?.headers.tracestate, 'k=v')

    const sampledParent = 'b34da6a3ce929d0e0e47364bf92f3577'
    const s = await call('/t/c', { traceparent: `00-${sampledParent}-00f067aa0ba902b7-01` })
    assert.equal(parseTp(s.up?.headers.traceparent).flags, '01')
    await waitSpans(sampledParent, 2)
    await sleep(300)
    assert.equal(spansOf(a.traceId).length, 0)
    assert.equal(spansOf(traceId).length, 0)
  })

  test('collector down: requests do not wait, spans are dropped and counted', async () => {
    await apply(config(`  tracing: { endpoint: "http://127.0.0.1:${deadPort}", sampling: 1 }
`))
    const logBefore = gw.output().length
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => call(`/t/down/${i}`)))
    for (const r of results) assert.equal(r.status, 200)
    assert.ok(results.every((r) => r.ms < 1000), `latencies ${results.map((r) => Math.round(r.ms)).join(',')}`)
    const line = await waitFor('a GH_WRN_TRACE_EXPORT line', () => {
      const l = gw.output().slice(logBefore).split('\n').find((x) => x.includes('GH_WRN_TRACE_EXPORT'))
      return l ?? undefined
    }, 15_000)
    const rec = JSON.parse(line) as { level: string; droppedSpans: number; msg: string }
    assert.equal(rec.level, 'warn')
    assert.ok(rec.droppedSpans > 0, line)
    // still serving, still propagating
    const r = await call('/t/after')
    assert.equal(r.status, 200)
    parseTp(r.up?.headers.traceparent)
  })

  test('tracing disabled: nothing is added, a client traceparent passes through unchanged', async () => {
    await apply(config(`  tracing: { enabled: false, endpoint: "http://127.0.0.1:${rx.port}" }
`))
    const before = rx.spans.length
    const none = await call('/t/off')
    assert.equal(none.up?.headers.traceparent, undefined)
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const mine = await call('/t/off', { traceparent: tp, tracestate: 'x=y' })
    assert.equal(mine.up?.headers.traceparent, tp)
    assert.equal(mine.up?.headers.tracestate, 'x=y')
    await sleep(1300)
    assert.equal(rx.spans.length, before)
  })
  test('the access log has the trace id the upstream received: new, continued or replacing an invalid one, sampled or not', async () => {
    const logs = path.join(dir, 'logs')
    await apply(config(`  tracing: { endpoint: "http://127.0.0.1:${rx.port}", sampling: 0 }
`, `{ accessLogs: { enabled: true }, directory: ${JSON.stringify(logs)} }`))
    const calls = [
      await call('/t/log/new'),
      await call('/t/log/continued', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }),
      await call('/t/log/invalid', { traceparent: '00-XYZ-00f067aa0ba902b7-01' }),
    ]
    const byId = new Map<string, string>()
    for (const c of calls) byId.set(String(c.up?.headers['x-request-id']), parseTp(c.up?.headers.traceparent).traceId)
    assert.equal([...byId.values()][1], '4bf92f3577b34da6a3ce929d0e0e4736')
    const lines = await waitFor('3 access log lines', () => {
      const file = path.join(logs, 'access.log')
      if (!fs.existsSync(file)) return undefined
      const ls = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('/t/log/')).map((l) => JSON.parse(l) as { requestId: string; traceId: string })
      return ls.length >= 3 ? ls : undefined
    }, 10_000, 50)
    for (const l of lines) assert.equal(l.traceId, byId.get(l.requestId), `trace id logged for ${l.requestId}`)
  })
})
