import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LogFile } from '../../src/telemetry/log-file.js'
import { formatAccessLine, redactQuery } from '../../src/telemetry/access-log.js'
import { createLogger, flushRuntimeLog, reopenRuntimeLog, setRuntimeLogDirectory, setRuntimeLogSecrets } from '../../src/telemetry/runtime-log.js'
import type { Exchange } from '../../src/worker/exchange.js'

/*
 * White-box tests of the log plumbing: the buffered LogFile (batching, deadline, bound,
 * close, exit flush, reopen), the access log line, and the runtime logger's file output
 * and redaction.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-logs-unit-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))
let n = 0
const fresh = (): string => path.join(tmp, `f${++n}`, 'x.log')
const lines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')

describe('LogFile', () => {
  test('small writes are batched into few write calls and arrive complete and in order', async () => {
    const file = fresh()
    const f = new LogFile(file, { minLength: 4096, flushIntervalMs: 20 })
    const calls = { n: 0 }
    const orig = fs.write
    ;(fs as unknown as { write: unknown }).write = (...args: unknown[]) => { calls.n++; return (orig as (...a: unknown[]) => void)(...args) }
    try {
      const line = 'x'.repeat(99) + '\n'
      for (let i = 0; i < 1000; i++) f.write(`${String(i).padStart(4, '0')}${line}`)
      await f.drained()
    } finally {
      ;(fs as unknown as { write: unknown }).write = orig
    }
    const got = lines(file)
    assert.equal(got.length, 1000)
    assert.deepEqual(got.map((l) => Number(l.slice(0, 4))), Array.from({ length: 1000 }, (_, i) => i))
    // 103 KB in ≥ 4 KiB batches; one write at a time, so the rest piles into few large ones.
    assert.ok(calls.n >= 1 && calls.n <= 26, `${calls.n} write calls`)
    assert.equal(f.written, 1000)
    await f.close()
  })

  test('multi-byte text, lines crossing slab boundaries and a line larger than a slab arrive byte for byte, in order', async () => {
    const file = fresh()
    // minLength 4096: slabs of 20 KiB, so this fills several while the first write is in flight.
    const f = new LogFile(file, { minLength: 4096, flushIntervalMs: 20 })
    const expected: string[] = []
    const samples = ['plain ascii', 'café crème', '漢字とかな', 'emoji 🚀 and more 🛰️', '\u0000 escaped']
    for (let i = 0; i < 400; i++) {
      const l = `${i} ${samples[i % samples.length]!.repeat(1 + (i % 37))}\n`
      expected.push(l)
      assert.equal(f.write(l), true)
      if (i === 200) { const big = `big ${'é'.repeat(30_000)}\n`; expected.push(big); assert.equal(f.write(big), true) }
    }
    await f.drained()
    assert.equal(fs.readFileSync(file, 'utf8'), expected.join(''))
    assert.equal(f.written, 401)
    assert.equal(f.dropped, 0)
    await f.close()
  })

  test('a multi-byte line that fits a slab in characters but not in bytes goes whole into the next slab', async () => {
    // White-box: minLength 4096 makes slabs of 4096 + 16 KiB bytes. The first line starts a
    // write; the filler then leaves 100 bytes of the next slab, and 61 characters of 'é'
    // need 121.
    const file = fresh()
    const f = new LogFile(file, { minLength: 4096, flushIntervalMs: 20 })
    const first = `${'a'.repeat(4095)}\n`
    const filler = `${'b'.repeat(4096 + 16 * 1024 - 100 - 1)}\n`
    const accented = `${'é'.repeat(60)}\n`
    for (const l of [first, filler, accented, 'after\n']) assert.equal(f.write(l), true)
    await f.drained()
    assert.equal(fs.readFileSync(file, 'utf8'), first + filler + accented + 'after\n')
    await f.close()
  })

  test('a lone line is written after the flush interval without any further write', async () => {
    const file = fresh()
    const f = new LogFile(file, { minLength: 4096, flushIntervalMs: 30 })
    f.write('one\n')
    assert.equal(fs.readFileSync(file, 'utf8'), '')
    await new Promise((r) => setTimeout(r, 150))
    assert.deepEqual(lines(file), ['one'])
    await f.close()
  })

  test('close() writes what is still buffered, and later writes are dropped', async () => {
    const file = fresh()
    const f = new LogFile(file, { minLength: 1 << 20, flushIntervalMs: 60_000 })
    for (const l of ['a\n', 'b\n', 'c\n']) f.write(l)
    await f.close()
    assert.deepEqual(lines(file), ['a', 'b', 'c'])
    assert.equal(f.write('d\n'), false)
    assert.equal(f.dropped, 1)
  })

  test('when lines pile up behind a write beyond maxBuffer they are dropped and counted, not queued', async () => {
    const file = fresh()
    const reported: number[] = []
    const f = new LogFile(file, { minLength: 1, maxBuffer: 1000, dropReportMs: 10, onDrop: (k) => reported.push(k) })
    const line = 'y'.repeat(99) + '\n'
    let accepted = 0
    // The first line starts a write; everything else arrives while it is in flight.
    for (let i = 0; i < 100; i++) if (f.write(line)) accepted++
    assert.equal(accepted, 11) // 1 in flight + 10 × 100 chars = maxBuffer
    assert.equal(f.dropped, 89)
    await f.drained()
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(lines(file).length, 11)
    assert.deepEqual(reported, [89])
    await f.close()
  })

  test('buffered lines are written synchronously when the process exits', () => {
    const file = fresh()
    const script = `import { LogFile } from ${JSON.stringify(path.join(ROOT, 'src/telemetry/log-file.ts'))}
const f = new LogFile(${JSON.stringify(file)}, { minLength: 1 << 20, flushIntervalMs: 60000 })
for (let i = 0; i < 5; i++) f.write('line ' + i + '\\n')
process.exit(0)`
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(lines(file), ['line 0', 'line 1', 'line 2', 'line 3', 'line 4'])
  })

  test('reopen() after the file was moved sends new lines to a new file and leaves the old one complete', async () => {
    const file = fresh()
    const f = new LogFile(file, { minLength: 1, flushIntervalMs: 10 })
    for (let i = 0; i < 50; i++) f.write(`old ${i}\n`)
    fs.renameSync(file, `${file}.1`) // logrotate's move, while writes may be in flight
    f.write('old 50\n')
    f.reopen()
    for (let i = 0; i < 50; i++) f.write(`new ${i}\n`)
    await f.close()
    const oldLines = lines(`${file}.1`)
    const newLines = lines(file)
    assert.equal(oldLines.length + newLines.length, 101)
    assert.ok(oldLines.every((l) => /^old \d+$/.test(l)))
    assert.ok(newLines.every((l) => /^(old|new) \d+$/.test(l)))
    assert.ok(newLines.filter((l) => l.startsWith('new')).length === 50)
  })
})

function fakeExchange(over: Partial<Record<string, unknown>> = {}): Exchange {
  const t0 = performance.now() - 12.3456
  return {
    requestId: 'req-1', method: 'GET', url: '/orders/v1/items', query: 'a=1&api_key=s3cret&b=2',
    headers: ['user-agent', 'curl/8.5 "quoted"\nnext', 'authorization', 'Bearer TOKEN', 'traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
    api: { name: 'orders' }, route: { id: 'orders/v1#0' },
    down: { status: 200, bytesOut: 321 }, bytesIn: 17,
    startedAt: t0, upstreamStartedAt: t0 + 1, upstreamHeadersAt: t0 + 5, upstreamEndedAt: t0 + 10, endedAt: t0 + 12.3456,
    upstreamOrigin: 'http://127.0.0.1:9000', upstreamStatus: 200, clientIp: '127.0.0.1',
    consumer: null, decidedBy: null, outcome: null, traceparent: null,
    ...over,
  } as unknown as Exchange
}

describe('access log line', () => {
  test('is one JSON line with every field, escaping only what needs it', () => {
    const line = formatAccessLine(fakeExchange(), null, Date.parse('2024-05-01T12:00:00.500Z'))
    assert.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1)
    const o = JSON.parse(line) as Record<string, unknown>
    assert.deepEqual(Object.keys(o), ['time', 'requestId', 'traceId', 'api', 'route', 'method', 'path', 'status', 'bytesIn', 'bytesOut',
      'durationMs', 'upstream', 'upstreamStatus', 'upstreamMs', 'upstreamHeadersMs', 'clientIp', 'userAgent', 'consumer', 'decidedBy', 'outcome'])
    assert.equal(o.time, '2024-05-01T12:00:00.487Z') // start = logged-at minus the duration
    assert.equal(o.traceId, '0af7651916cd43dd8448eb211c80319c')
    assert.equal(o.userAgent, 'curl/8.5 "quoted"\nnext')
    assert.equal(o.path, '/orders/v1/items')
    assert.equal(o.durationMs, 12.346)
    assert.equal(o.upstreamMs, 9)
    assert.equal(o.upstreamHeadersMs, 4)
    assert.equal(o.status, 200)
    assert.equal(o.bytesIn, 17)
    assert.equal(o.bytesOut, 321)
    assert.equal(line.includes('TOKEN'), false)
    assert.equal(line.includes('s3cret'), false)
  })

  test('a client traceparent is logged only when valid (W3C: no all-zero ids, no version ff)', () => {
    const traceIdOf = (tp: string): unknown => (JSON.parse(formatAccessLine(fakeExchange({ headers: ['traceparent', tp] }), null)) as Record<string, unknown>).traceId
    assert.equal(traceIdOf('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), '0af7651916cd43dd8448eb211c80319c')
    assert.equal(traceIdOf(`00-${'0'.repeat(32)}-b7ad6b7169203331-01`), null)
    assert.equal(traceIdOf('ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), null)
    assert.equal(traceIdOf('00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01'), null)
  })

  test('a rejected, unrouted exchange has nulls where nothing happened', () => {
    const o = JSON.parse(formatAccessLine(fakeExchange({
      route: null, upstreamStartedAt: 0, upstreamHeadersAt: 0, upstreamEndedAt: 0, upstreamOrigin: null, upstreamStatus: 0,
      headers: [], down: { status: 401, bytesOut: 80 }, decidedBy: 'api-key', outcome: 'GH_ERR_AUTH_MISSING',
    }), null)) as Record<string, unknown>
    assert.equal(o.route, null)
    assert.equal(o.upstream, null)
    assert.equal(o.upstreamStatus, null)
    assert.equal(o.upstreamMs, null)
    assert.equal(o.traceId, null)
    assert.equal(o.userAgent, null)
    assert.equal(o.decidedBy, 'api-key')
    assert.equal(o.outcome, 'GH_ERR_AUTH_MISSING')
  })

  test('the query, when included, has credential-like values redacted', () => {
    const o = JSON.parse(formatAccessLine(fakeExchange(), new Set(['api_key']))) as Record<string, unknown>
    assert.equal(o.query, 'a=1&api_key=[REDACTED]&b=2')
    assert.equal(redactQuery('Api%5FKey=x&k&t=1&token=', new Set(['api_key', 'token'])), 'Api%5FKey=[REDACTED]&k&t=1&token=[REDACTED]')
  })
})

describe('runtime log', () => {
  test('with a directory, lines go to runtime.log with time, level, code, msg, component and pid', async () => {
    const dir = path.join(tmp, 'rt')
    const log = createLogger('unit')
    setRuntimeLogDirectory(dir)
    try {
      log.info('GH_TEST', 'hello file', { n: 1 })
      log.debug('GH_TEST_DEBUG', 'not at info')
      await flushRuntimeLog()
      const got = lines(path.join(dir, 'runtime.log')).map((l) => JSON.parse(l) as Record<string, unknown>)
      assert.equal(got.length, 1)
      assert.equal(got[0]!.level, 'info')
      assert.equal(got[0]!.code, 'GH_TEST')
      assert.equal(got[0]!.msg, 'hello file')
      assert.equal(got[0]!.component, 'unit')
      assert.equal(got[0]!.pid, process.pid)
      assert.equal(got[0]!.n, 1)
      assert.ok(!Number.isNaN(Date.parse(got[0]!.time as string)))
      // Reopen after a move: the next line lands in a fresh runtime.log.
      fs.renameSync(path.join(dir, 'runtime.log'), path.join(dir, 'runtime.log.1'))
      reopenRuntimeLog()
      log.warn('GH_TEST_AFTER', 'after reopen')
      await flushRuntimeLog()
      assert.equal(lines(path.join(dir, 'runtime.log')).length, 1)
      assert.equal(lines(path.join(dir, 'runtime.log.1')).length, 1)
    } finally {
      setRuntimeLogDirectory(null)
    }
  })

  test('configured secrets are redacted from messages and fields, and secret-named fields are blanked', () => {
    const out: string[] = []
    const log = createLogger('unit', 'info', (l) => out.push(l))
    setRuntimeLogSecrets(['hunter2-"q"', 'short'])
    try {
      log.error('GH_TEST', 'connect redis://:hunter2-"q"@h failed', { url: 'x short y', password: 'p', nested: { token: 't' } })
    } finally {
      setRuntimeLogSecrets([])
    }
    const o = JSON.parse(out[0]!) as Record<string, unknown>
    assert.equal(o.msg, 'connect redis://:[REDACTED]@h failed')
    assert.equal(o.url, 'x [REDACTED] y')
    assert.equal(o.password, '[REDACTED]')
    assert.deepEqual(o.nested, { token: '[REDACTED]' })
    assert.equal(out[0]!.includes('hunter2'), false)
  })
})
