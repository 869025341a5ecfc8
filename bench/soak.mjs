#!/usr/bin/env node
// Soak: the gateway (2 workers, access log on, metrics on) under a fixed offered rate for
// --minutes, with faults on both sides and a config reload every minute; checks that it
// neither grows nor leaks and fails no request it should have served.
//
//   upstream   a node http server in a child process (its CPU is its own): 100-byte bodies;
//              1 % of requests get an injected fault, a third each: 503 (marked with
//              x-soak-fault), socket destroyed before the response, socket destroyed after
//              the head and half the body. It logs every faulted request's x-soak-id.
//   load       an undici generator in a child process at a fixed offered rate (open loop),
//              every request tagged with x-soak-id: 98 % plain GETs; 1 % client aborts
//              (the upstream delays the answer 300 ms and the client aborts after 50 ms);
//              0.5 % slow readers (256 KiB read at 128 KiB/s); 0.5 % slow uploads (2 KiB
//              POST in 100-byte pieces every 100 ms). Slow clients stay far inside the
//              default timeouts, so they must succeed.
//   reloads    every 60 s POST /reload after rewriting the config with a different
//              response header (x-soak-gen), so the version changes each time.
//   samples    every 10 s, per gateway process: VmRSS, open fds (/proc), event-loop lag
//              (p50/p99/max from /metrics, per `process` label); requests by outcome.
//
// A request counts as failed unless it returned 200 with the whole body, or its failure
// is explained by an injected fault: our own abort, or an id the upstream logged as faulted
// (a 502 or a cut response for a reset, the 503 for a 503). Anything else (a shed 503, a
// 502 without an injected fault, a failure next to a reload) is a failure.
// Goals: RSS growth < 5 % from the end of warm-up (the first 20 % of the run) to the end,
// each the median of the samples in a window (the 20 % after warm-up, the last 20 %): the
// first reload (at 60 s, the end of a 5-minute run's warm-up) drops a worker's RSS for a few
// samples, and a single sample there made a run flat at 115 MiB from 90 s to the end read
// as +24 %; fds back to baseline 15 s after the load stops; zero failed requests.
// Results: bench/soak.last.json.
//
// Offered rate (without --rate): capacity is measured with wrk (the gateway's, printed) and
// with this script's generator closed-loop; the rate is half the latter, or the first of a
// third, a quarter, … that the generator sustains open-loop for 6 s (p99 < 100 ms).
// Needs: npm run build; wrk (optional, for the printed gateway capacity).
// Loopback only; bounded: minutes + about 1.5 min.
// Usage: node bench/soak.mjs [--minutes 10] [--rate R] [--workers 2]
import { fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const SELF = fileURLToPath(import.meta.url)
const role = process.argv[2] === '--role' ? process.argv[3] : 'main'
if (role === 'upstream') await upstreamMain()
else if (role === 'load') await loadMain()
else await main()

// ─────────────────────────── upstream (child process) ───────────────────────────
async function upstreamMain() {
  const FAULT_RATE = 0.01
  let faultsOn = true
  const faults = [] // [id, kind]
  const served = { ok: 0, faulted: 0, noId: 0 }
  const body100 = Buffer.alloc(100, 'u')
  const server = http.createServer((req, res) => {
    const id = req.headers['x-soak-id']
    const size = Number(req.headers['x-soak-size'] ?? 100)
    const delay = Number(req.headers['x-soak-delay'] ?? 0)
    req.on('data', () => {})
    req.on('end', () => {
      if (id === undefined) served.noId++
      let kind = null
      if (faultsOn && id !== undefined && Math.random() < FAULT_RATE) kind = ['503', 'reset', 'midbody'][Math.floor(Math.random() * 3)]
      if (kind !== null) { faults.push([id, kind]); served.faulted++ }
      const answer = () => {
        if (kind === 'reset') { req.socket.destroy(); return }
        if (kind === '503') { res.writeHead(503, { 'content-type': 'text/plain', 'x-soak-fault': '503', 'content-length': 8 }); res.end('injected'); return }
        const body = size === 100 ? body100 : Buffer.alloc(size, 'u')
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
        if (kind === 'midbody') { res.write(body.subarray(0, body.length >> 1)); setImmediate(() => req.socket.destroy()); return }
        served.ok++
        res.end(body)
      }
      if (delay > 0) setTimeout(answer, delay)
      else answer()
    })
  })
  // Node's default 5 s: it advertises Keep-Alive: timeout=5, which undici (the gateway's pool)
  // honours minus 1 s, so the gateway closes idle upstream connections first, after 4 s.
  server.keepAliveTimeout = 5_000
  server.requestTimeout = 0
  server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }))
  process.on('message', (m) => {
    if (m.type === 'faults') faultsOn = m.on
    else if (m.type === 'report') process.send({ type: 'report', faults, served })
  })
  process.on('disconnect', () => process.exit(0))
}

// ─────────────────────────── load generator (child process) ───────────────────────────
async function loadMain() {
  const { Pool } = await import('undici')
  const opts = JSON.parse(process.argv[4])
  const { port, rate, seconds } = opts
  const origin = `http://127.0.0.1:${port}`
  const common = { headersTimeout: 30_000, bodyTimeout: 30_000, keepAliveTimeout: 4_000 }
  // Enough connections that requests do not queue in the generator at the offered rate
  // (128 capped it near 4k req/s once the gateway's round trip reached ~30 ms on a busy host).
  const fast = new Pool(origin, { ...common, connections: 256, pipelining: 1 })
  const slow = new Pool(origin, { ...common, connections: 1024, pipelining: 1 })
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

  const counts = { issued: 0, done: 0, ok: 0, aborted: 0, abortTooLate: 0, injected503: 0, notOk: 0, shed: 0 }
  const byKind = { normal: { n: 0, ok: 0 }, abort: { n: 0, ok: 0 }, slowRead: { n: 0, ok: 0 }, slowUpload: { n: 0, ok: 0 } }
  const notOk = [] // {id, kind, t, status, code, err}
  let lat = new Float64Array(1 << 16)
  let latN = 0
  let window = []
  let inflight = 0
  let maxInflight = 0
  const t0 = performance.now()
  const now = () => (performance.now() - t0) / 1000

  function record(kind, id, startedAt, outcome) {
    counts.done++
    inflight--
    if (outcome.ok) {
      counts.ok++
      byKind[kind].ok++
      if (kind === 'normal') {
        const ms = performance.now() - startedAt
        if (latN === lat.length) { const b = new Float64Array(lat.length * 2); b.set(lat); lat = b }
        lat[latN++] = ms
        window.push(ms)
      }
      return
    }
    if (outcome.aborted) { counts.aborted++; return }
    if (outcome.status === 503 && outcome.fault === '503') { counts.injected503++ }
    else counts.notOk++
    if (outcome.code === 'GH_ERR_OVERLOADED') counts.shed++
    notOk.push({ id, kind, t: +now().toFixed(3), status: outcome.status ?? null, code: outcome.code ?? null, err: outcome.err ?? null, fault: outcome.fault ?? null, bytes: outcome.bytes ?? null })
  }

  async function one(kind, id) {
    const startedAt = performance.now()
    const headers = { 'x-soak-id': String(id) }
    let pool = fast
    let method = 'GET'
    let body
    let expect = 100
    let ac = null
    if (kind === 'abort') {
      pool = slow
      headers['x-soak-delay'] = '300'
      ac = new AbortController()
      setTimeout(() => ac.abort(), 50)
    } else if (kind === 'slowRead') {
      pool = slow
      headers['x-soak-size'] = String(256 * 1024)
      expect = 256 * 1024
    } else if (kind === 'slowUpload') {
      pool = slow
      method = 'POST'
      headers['content-length'] = '2000'
      headers['content-type'] = 'application/octet-stream'
      body = (async function* () { for (let i = 0; i < 20; i++) { await sleep(100); yield Buffer.alloc(100, 'c') } })()
    }
    let status
    let fault
    let bytes = 0
    try {
      const res = await pool.request({ path: `/${kind}`, method, headers, body, signal: ac?.signal })
      status = res.statusCode
      fault = res.headers['x-soak-fault']
      const chunks = []
      for await (const chunk of res.body) {
        bytes += chunk.length
        if (status !== 200) chunks.push(chunk)
        else if (kind === 'slowRead') await sleep(chunk.length / 128) // 128 KiB/s
      }
      if (status !== 200) {
        let code
        try { code = JSON.parse(Buffer.concat(chunks).toString()).code } catch {}
        record(kind, id, startedAt, { ok: false, status, fault, code, bytes })
        return
      }
      if (status === 200 && bytes === expect) {
        if (kind === 'abort') counts.abortTooLate++
        record(kind, id, startedAt, { ok: true })
      } else record(kind, id, startedAt, { ok: false, status, fault, err: `short body ${bytes}/${expect}`, bytes })
    } catch (err) {
      if (kind === 'abort' && (err.name === 'AbortError' || err.code === 'UND_ERR_ABORTED' || ac?.signal.aborted)) { record(kind, id, startedAt, { ok: false, aborted: true }); return }
      record(kind, id, startedAt, { ok: false, status, fault, err: err.code ?? err.message, bytes })
    }
  }

  if (opts.closedLoop) {
    // Capacity: `concurrency` plain GETs back to back for `seconds`; reports req/s.
    let n = 0
    const end = performance.now() + seconds * 1000
    await Promise.all(Array.from({ length: opts.concurrency }, async () => {
      while (performance.now() < end) {
        try { const r = await fast.request({ path: '/capacity', method: 'GET' }); await r.body.dump(); n++ } catch {}
      }
    }))
    process.send({ type: 'capacity', rps: Math.round(n / seconds) })
    await fast.close()
    setTimeout(() => process.exit(0), 100)
    return
  }
  let stopping = false
  let nextId = 1
  let behind = 0
  const timer = setInterval(() => {
    if (stopping) return
    const due = Math.floor(now() * rate) - counts.issued
    if (due > rate * 0.05) behind++ // more than 50 ms of requests owed: the generator fell behind
    for (let i = 0; i < due; i++) {
      const r = opts.plain ? 1 : Math.random()
      const kind = r < 0.01 ? 'abort' : r < 0.015 ? 'slowRead' : r < 0.02 ? 'slowUpload' : 'normal'
      counts.issued++
      byKind[kind].n++
      inflight++
      if (inflight > maxInflight) maxInflight = inflight
      void one(kind, nextId++)
    }
  }, 5)
  const q = (arr, p) => { if (arr.length === 0) return null; const s = Float64Array.from(arr).sort(); return +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2) }
  const report = setInterval(() => {
    const w = window
    window = []
    process.send({ type: 'stats', t: +now().toFixed(1), counts: { ...counts }, inflight, p50: q(w, 0.5), p99: q(w, 0.99), max: w.length ? +Math.max(...w).toFixed(1) : null })
  }, 10_000)

  async function stop() {
    stopping = true
    clearInterval(timer)
    const end = Date.now() + (opts.drainS ?? 30) * 1000
    while (inflight > 0 && Date.now() < end) await sleep(100)
    clearInterval(report)
    const left = inflight
    // destroy, not close: close() would wait for requests still queued in the pools.
    await Promise.race([Promise.all([fast.destroy(), slow.destroy()]), sleep(5000)])
    const all = lat.subarray(0, latN).sort()
    const pct = (p) => latN ? +all[Math.min(latN - 1, Math.floor(p * latN))].toFixed(2) : null
    process.send({
      type: 'final', seconds: +now().toFixed(1), rate, counts, byKind, inflightLeft: left, maxInflight, behindTicks: behind,
      latency: { n: latN, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), p999: pct(0.999), max: latN ? +all[latN - 1].toFixed(1) : null },
      notOk,
    })
    setTimeout(() => process.exit(0), 200)
  }
  process.on('message', (m) => { if (m.type === 'stop') void stop() })
  setTimeout(() => void stop(), (opts.autoStopS ?? seconds + 60) * 1000).unref() // bound even without the parent
  process.on('disconnect', () => process.exit(0))
  process.send({ type: 'started' })
}

// ─────────────────────────── orchestrator ───────────────────────────
async function main() {
  const lib = await import('./lib.mjs')
  const { CLK_TCK, cleanup, fdCount, fdTargets, freePort, gatewayPids, hasTool, nofileLimit, opt, parseWrk, procTable, procTicks, promSamples, root, rssKiB, schedNs, sleep, startGateway, tmp, waitHttp, writeBenchConfig } = lib
  const MINUTES = opt('minutes', 10)
  const RATE = opt('rate', NaN)
  const WORKERS = opt('workers', 2)
  const RUN_S = Math.round(MINUTES * 60)
  const WARMUP_S = Math.round(RUN_S * 0.2)
  const SAMPLE_MS = 10_000
  const RELOAD_MS = 60_000
  if (!fs.existsSync(path.join(root, 'dist/src/cli/main.js'))) { console.error('bench: run npm run build first'); process.exit(2) }
  const hardStop = setTimeout(() => { console.error('soak: hard time limit reached'); cleanup(); process.exit(3) }, (RUN_S + 240) * 1000)
  hardStop.unref()

  // Upstream.
  const up = fork(SELF, ['--role', 'upstream'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  process.on('exit', () => { try { up.kill('SIGTERM') } catch {} })
  const upstreamPort = await new Promise((resolve) => up.once('message', (m) => resolve(m.port)))
  const upAsk = (msg, type) => new Promise((resolve) => { const h = (m) => { if (m.type === type) { up.off('message', h); resolve(m) } }; up.on('message', h); up.send(msg) })

  // Gateway.
  const gwPort = await freePort()
  const adminPort = await freePort()
  const logDir = path.join(tmp, 'soak-logs')
  fs.mkdirSync(logDir, { recursive: true })
  let gen = 0
  const writeConfig = () => writeBenchConfig('soak', {
    gwPort, upstreamPort, adminPort, workers: WORKERS,
    api: `  policies:\n    - policyRef: { name: header-injection }\n      config: { responseHeaders: { x-soak-gen: "${gen}" } }\n`,
    host: `  logging: { runtimeLogs: { logLevel: info }, accessLogs: { enabled: true }, directory: ${logDir} }\n  metrics: { enabled: true }\n`,
  })
  const dir = writeConfig()
  const gw = startGateway(dir)
  await waitHttp(`http://127.0.0.1:${adminPort}/ready`, 30_000).catch((err) => { console.error(`${err.message}\n--- gateway output ---\n${gw.output()}`); cleanup(); process.exit(1) })
  const first = await gatewayPids(adminPort)
  console.log(`gateway :${gwPort} (admin :${adminPort}) primary ${first.primary}, workers ${first.workers.map((w) => w.pid).join(' ')}; upstream pid ${up.pid}; Max open files ${nofileLimit(first.primary)}`)

  // Capacity (faults off), then the offered rate. wrk measures the gateway's; the node
  // generator costs about as much CPU per request as the gateway on these 2 CPUs, so the
  // rate is half of what the generator itself reaches closed-loop (64 concurrent), which is
  // lower; without wrk the same, and 4000 if that fails.
  let capacity = null
  let rate = RATE
  await fetch(`http://127.0.0.1:${gwPort}/warm`).then((r) => r.arrayBuffer())
  if (!Number.isFinite(rate)) {
    up.send({ type: 'faults', on: false })
    if (hasTool('wrk')) {
      const out = spawnSync('wrk', ['-t1', '-c64', '-d5s', '--latency', `http://127.0.0.1:${gwPort}/capacity`], { encoding: 'utf8', timeout: 30_000 })
      if (out.status === 0) { capacity = { wrk: parseWrk(out.stdout) }; console.log(`capacity, wrk -t1 -c64 -d5s through the gateway (this machine as it is now): ${Math.round(capacity.wrk.rps)} req/s, p99 ${capacity.wrk.p99} ms`) }
    } else console.log('wrk not found: capacity from the node generator only')
    const cl = fork(SELF, ['--role', 'load', JSON.stringify({ port: gwPort, closedLoop: true, concurrency: 64, seconds: 5 })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const m = await Promise.race([new Promise((r) => cl.on('message', (x) => { if (x.type === 'capacity') r(x) })), sleep(30_000).then(() => null)])
    try { cl.kill('SIGTERM') } catch {}
    capacity = { ...capacity, generator: m?.rps ?? null }
    if (m) console.log(`capacity, this script's node generator closed-loop (64 concurrent, 5 s): ${m.rps} req/s`)
    // Half of that closed-loop figure is not always sustainable open-loop by this generator on
    // 2 shared CPUs (seen: 10k offered, 5k served, queues growing in the generator). So step
    // down from it: 6 s open-loop of plain GETs per candidate, take the first one served in full
    // (>= 98 % done, p99 < 100 ms, nothing left queued).
    const cands = m ? [2, 3, 4, 6, 8].map((d) => Math.round(m.rps / d)) : [4000, 2000, 1000]
    rate = null
    for (const r of cands) {
      const cal = fork(SELF, ['--role', 'load', JSON.stringify({ port: gwPort, rate: r, seconds: 6, autoStopS: 6, drainS: 3, plain: true })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const f = await Promise.race([new Promise((res) => cal.on('message', (x) => { if (x.type === 'final') res(x) })), sleep(30_000).then(() => null)])
      try { cal.kill('SIGTERM') } catch {}
      const good = f !== null && f.counts.ok >= 0.98 * f.counts.issued && f.inflightLeft === 0 && f.latency.p99 !== null && f.latency.p99 < 100
      console.log(`calibration: ${r} req/s open-loop for 6 s: ${f ? `${f.counts.ok}/${f.counts.issued} ok, p99 ${f.latency.p99} ms, ${f.inflightLeft} left` : 'no report'} → ${good ? 'sustained' : 'not sustained'}`)
      ;(capacity.calibration ??= []).push({ rate: r, ok: f?.counts.ok ?? null, issued: f?.counts.issued ?? null, p99: f?.latency.p99 ?? null, sustained: good })
      if (good) { rate = r; break }
      await sleep(3000)
    }
    up.send({ type: 'faults', on: true })
    if (rate === null) { rate = cands.at(-1); console.log(`no candidate sustained; using the lowest, ${rate}`) }
  }
  console.log(`offered rate: ${rate} req/s for ${MINUTES} min (warm-up: first ${WARMUP_S} s); reload every ${RELOAD_MS / 1000} s`)

  // Baseline after the capacity run's connections have gone (uWS idle ~10 s, upstream keep-alive 4 s).
  console.log('waiting 15 s for a quiet baseline …')
  await sleep(15_000)
  const procs = async () => {
    const p = await gatewayPids(adminPort)
    return [{ name: 'primary', pid: p.primary }, ...p.workers.map((w) => ({ name: `worker-${w.slot}`, pid: w.pid, restarts: w.restarts }))]
  }
  const baseProcs = await procs()
  const baseline = Object.fromEntries(baseProcs.map((p) => [p.name, { pid: p.pid, fds: fdCount(p.pid), rssKiB: rssKiB(p.pid), fdTargets: fdTargets(p.pid) }]))
  console.log(`baseline fds: ${baseProcs.map((p) => `${p.name} ${baseline[p.name].fds}`).join(', ')}`)

  // Load.
  const load = fork(SELF, ['--role', 'load', JSON.stringify({ port: gwPort, rate, seconds: RUN_S })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  process.on('exit', () => { try { load.kill('SIGTERM') } catch {} })
  let lastStats = null
  const statsLog = []
  let final = null
  const finalP = new Promise((resolve) => load.on('message', (m) => {
    if (m.type === 'stats') { lastStats = m; statsLog.push(m) }
    if (m.type === 'final') { final = m; resolve(m) }
  }))
  await new Promise((resolve) => load.once('message', resolve)) // started
  const t0 = Date.now()
  const el = () => (Date.now() - t0) / 1000

  const samples = []
  const reloads = []
  let prevCounts = null
  let prevTable = procTable()
  async function sample() {
    const ps = await procs().catch(() => [])
    let text = ''
    try { text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text() } catch {}
    const p50 = promSamples(text, 'nodejs_eventloop_lag_p50_seconds')
    const p99 = promSamples(text, 'nodejs_eventloop_lag_p99_seconds')
    const max = promSamples(text, 'nodejs_eventloop_lag_max_seconds')
    const heap = promSamples(text, 'nodejs_heap_size_used_bytes')
    const s = {
      t: Math.round(el()), at: el(),
      procs: Object.fromEntries(ps.map((p) => [p.name, {
        pid: p.pid, restarts: p.restarts, rssKiB: rssKiB(p.pid), fds: fdCount(p.pid), ticks: procTicks(p.pid), sched: schedNs(p.pid),
        lagP50ms: p50.has(p.name) ? +(p50.get(p.name) * 1000).toFixed(1) : null,
        lagP99ms: p99.has(p.name) ? +(p99.get(p.name) * 1000).toFixed(1) : null,
        lagMaxms: max.has(p.name) ? +(max.get(p.name) * 1000).toFixed(1) : null,
        heapUsedMiB: heap.has(p.name) ? +(heap.get(p.name) / 1048576).toFixed(1) : null,
      }])),
      others: { upstream: { rssKiB: rssKiB(up.pid) }, load: { rssKiB: rssKiB(load.pid) } },
      load: lastStats,
    }
    // CPU (% of one CPU) and time the main thread waited for a CPU while runnable (ms/s) since the last sample.
    const prev = samples.at(-1)
    for (const [n, p] of Object.entries(s.procs)) {
      const q = prev?.procs[n]
      const dt = prev ? s.at - prev.at : 0
      p.cpuPct = q && q.pid === p.pid && dt > 0 ? Math.round(100 * (p.ticks - q.ticks) / CLK_TCK / dt) : null
      p.runqMsPerS = q && q.pid === p.pid && dt > 0 && p.sched && q.sched ? Math.round((p.sched.wait - q.sched.wait) / 1e6 / dt) : null
    }
    s.others.upstream.cpuPct = prev && prev.others.upstream.ticks != null ? Math.round(100 * (procTicks(up.pid) - prev.others.upstream.ticks) / CLK_TCK / (s.at - prev.at)) : null
    s.others.load.cpuPct = prev && prev.others.load.ticks != null ? Math.round(100 * (procTicks(load.pid) - prev.others.load.ticks) / CLK_TCK / (s.at - prev.at)) : null
    s.others.upstream.ticks = procTicks(up.pid)
    s.others.load.ticks = procTicks(load.pid)
    s.loadavg1 = os.loadavg()[0]
    // Everything else that used a CPU since the last sample (other people's processes on a shared host).
    const table = procTable()
    const mine = new Set([process.pid, up.pid, load.pid, ...Object.values(s.procs).map((p) => p.pid)])
    if (prevTable) {
      const secs = s.at - (prev?.at ?? 0)
      const others = []
      let total = 0
      for (const [pid, p] of table) {
        if (mine.has(pid)) continue
        const d = p.ticks - (prevTable.get(pid)?.ticks ?? 0)
        if (d <= 0) continue
        total += d
        others.push([p.comm, pid, d])
      }
      others.sort((a, b) => b[2] - a[2])
      s.neighbours = { cpuPct: Math.round(100 * total / CLK_TCK / secs), top: others.slice(0, 3).map(([comm, pid, d]) => `${comm}(${pid}) ${Math.round(100 * d / CLK_TCK / secs)}%`) }
    }
    prevTable = table
    samples.push(s)
    const c = lastStats?.counts
    const rateNow = !c ? '-' : prevCounts && prevCounts.t === lastStats.t ? '-' : prevCounts ? Math.round((c.issued - prevCounts.c.issued) / (lastStats.t - prevCounts.t)) : Math.round(c.issued / Math.max(1, lastStats.t))
    if (c) prevCounts = { c, t: lastStats.t }
    const names = Object.keys(s.procs)
    console.log(`${String(s.t).padStart(4)}s  ${String(rateNow).padStart(5)} req/s  ok ${String(c?.ok ?? 0).padStart(8)}  notOk ${String((c?.notOk ?? 0) + (c?.injected503 ?? 0)).padStart(5)}  p99 ${String(lastStats?.p99 ?? '-').padStart(6)} ms | ` +
      names.map((n) => `${n.replace('worker-', 'w')} ${(s.procs[n].rssKiB / 1024).toFixed(0)}M ${s.procs[n].fds}fd lag99 ${s.procs[n].lagP99ms ?? '-'}ms cpu ${s.procs[n].cpuPct ?? '-'}% runq ${s.procs[n].runqMsPerS ?? '-'}`).join('  ') +
      ` | up ${s.others.upstream.cpuPct ?? '-'}% gen ${s.others.load.cpuPct ?? '-'}% others ${s.neighbours?.cpuPct ?? '-'}% load ${s.loadavg1.toFixed(1)}`)
  }
  async function reload() {
    gen++
    writeConfig()
    const at = el()
    const start = performance.now()
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST', signal: AbortSignal.timeout(30_000) })
      const j = await r.json()
      reloads.push({ t: +at.toFixed(1), status: r.status, ok: j.ok === true, changed: j.changed, version: j.version ?? null, ms: +(performance.now() - start).toFixed(0), errors: j.errors })
      console.log(`${String(Math.round(at)).padStart(4)}s  reload #${gen}: ${r.status} ${j.ok ? `version ${j.version} changed=${j.changed}` : JSON.stringify(j.errors)} (${(performance.now() - start).toFixed(0)} ms)`)
    } catch (err) {
      reloads.push({ t: +at.toFixed(1), ok: false, error: err.message })
      console.log(`reload #${gen} failed: ${err.message}`)
    }
  }

  let nextSample = SAMPLE_MS
  let nextReload = RELOAD_MS
  while (el() * 1000 < RUN_S * 1000) {
    const wait = Math.min(nextSample, nextReload, RUN_S * 1000) - el() * 1000
    if (wait > 0) await sleep(wait)
    const now = el() * 1000
    if (now >= nextReload && now < RUN_S * 1000) { await reload(); nextReload += RELOAD_MS }
    if (now >= nextSample) { await sample(); nextSample += SAMPLE_MS }
  }
  const endSample = samples.at(-1)
  console.log(`${Math.round(el())}s  stopping the load …`)
  load.send({ type: 'stop' })
  await Promise.race([finalP, sleep(60_000)])
  if (!final) console.log('load generator gave no final report within 60 s')
  const stoppedAt = el()
  console.log('waiting 15 s after the load, then sampling fds …')
  await sleep(15_000)
  const afterProcs = await procs()
  const after = Object.fromEntries(afterProcs.map((p) => [p.name, { pid: p.pid, fds: fdCount(p.pid), rssKiB: rssKiB(p.pid), fdTargets: fdTargets(p.pid) }]))
  const upReport = await Promise.race([upAsk({ type: 'report' }, 'report'), sleep(10_000).then(() => ({ faults: [], served: null }))])
  const faultById = new Map(upReport.faults.map(([id, kind]) => [Number(id), kind]))

  // Attribution: every non-OK request is explained by an injected fault, or it failed.
  const nearReload = (t) => reloads.find((r) => Math.abs(r.t - t) <= 5) !== undefined
  const injected = { clientAbort: final?.counts.aborted ?? 0, upstream503: 0, upstreamReset: 0, upstreamMidbody: 0 }
  const failed = []
  for (const e of final?.notOk ?? []) {
    const kind = faultById.get(e.id)
    if (kind === '503' && e.status === 503 && e.fault === '503') injected.upstream503++
    else if (kind === 'reset' && (e.status === 502 || e.err !== null)) injected.upstreamReset++
    else if (kind === 'midbody' && (e.status === 502 || e.err !== null)) injected.upstreamMidbody++
    else failed.push({ ...e, upstreamFault: kind ?? null, nearReload: nearReload(e.t) })
  }
  const seen = new Set((final?.notOk ?? []).map((e) => e.id))
  const faultsMasked = [...faultById.keys()].filter((id) => !seen.has(id)).length // faulted upstream, yet OK to the client (e.g. a retry)
  const failedByWhat = {}
  for (const f of failed) { const k = `${f.status ?? '-'} ${f.code ?? f.err ?? ''}`.trim(); failedByWhat[k] = (failedByWhat[k] ?? 0) + 1 }

  // Per-process table.
  const warm = samples.find((s) => s.t >= WARMUP_S) ?? samples[0]
  const rows = []
  for (const name of Object.keys(baseline)) {
    const series = samples.map((s) => s.procs[name]).filter(Boolean)
    const ws = warm?.procs[name]
    const es = endSample?.procs[name]
    // Medians of the windows after warm-up and at the end (see the header).
    const rssIn = (from, to) => {
      const v = samples.filter((x) => x.t >= from && x.t < to && x.procs[name]).map((x) => x.procs[name].rssKiB).sort((a, b) => a - b)
      return v.length ? v[Math.floor(v.length / 2)] : null
    }
    const rssWarm = rssIn(WARMUP_S, WARMUP_S + Math.max(30, RUN_S * 0.2))
    const rssEnd = rssIn(RUN_S * 0.8, Infinity)
    const growth = rssWarm !== null && rssEnd !== null ? 100 * (rssEnd - rssWarm) / rssWarm : null
    // Least-squares RSS slope after warm-up (MiB per minute): growth that a single sample's noise cannot hide.
    const post = samples.filter((s) => s.t >= (warm?.t ?? 0) && s.procs[name]).map((s) => [s.t / 60, s.procs[name].rssKiB / 1024])
    let slope = null
    if (post.length >= 3) {
      const mx = post.reduce((a, [x]) => a + x, 0) / post.length
      const my = post.reduce((a, [, y]) => a + y, 0) / post.length
      slope = post.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / post.reduce((a, [x]) => a + (x - mx) ** 2, 0)
    }
    const lagP50 = series.map((p) => p.lagP50ms).filter((x) => x !== null).sort((a, b) => a - b)
    const pids = [...new Set(series.map((p) => p.pid))]
    rows.push({
      process: name, pids, rssWarmMiB: rssWarm !== null ? +(rssWarm / 1024).toFixed(1) : null, rssEndMiB: rssEnd !== null ? +(rssEnd / 1024).toFixed(1) : null,
      rssGrowthPct: growth === null ? null : +growth.toFixed(1), rssSlopeMiBPerMin: slope === null ? null : +slope.toFixed(2),
      rssMaxMiB: +(Math.max(...series.map((p) => p.rssKiB)) / 1024).toFixed(1),
      // V8 heap in use (from /metrics): RSS growth with a flat heap is allocator/heap sizing, not retained objects.
      heapWarmMiB: ws?.heapUsedMiB ?? null, heapEndMiB: es?.heapUsedMiB ?? null,
      heapMedianPostWarmMiB: (() => { const h = samples.filter((x) => x.t >= (warm?.t ?? 0)).map((x) => x.procs[name]?.heapUsedMiB).filter((x) => x != null).sort((a, b) => a - b); return h.length ? h[Math.floor(h.length / 2)] : null })(),
      fdsBaseline: baseline[name].fds, fdsPeak: Math.max(...series.map((p) => p.fds ?? 0)), fdsAfter: after[name]?.fds ?? null,
      lagP50ms: lagP50.length ? lagP50[Math.floor(lagP50.length / 2)] : null,
      lagP99maxms: Math.max(...series.map((p) => p.lagP99ms ?? 0)),
      lagMaxms: Math.max(...series.map((p) => p.lagMaxms ?? 0)),
    })
  }
  const restarted = rows.filter((r) => r.pids.length > 1 || after[r.process]?.pid !== baseline[r.process].pid)
  const goals = {
    rssGrowthUnder5pct: rows.every((r) => r.rssGrowthPct !== null && r.rssGrowthPct < 5),
    fdsBackToBaseline: rows.every((r) => r.fdsAfter !== null && r.fdsAfter <= r.fdsBaseline),
    zeroFailed: failed.length === 0 && final !== null && final.inflightLeft === 0,
    noWorkerRestarts: restarted.length === 0,
    reloadsAllApplied: reloads.length > 0 && reloads.every((r) => r.ok && r.changed),
  }
  // fds that stayed open: what they are, per process.
  const fdDiff = {}
  for (const name of Object.keys(baseline)) {
    if ((after[name]?.fds ?? 0) <= baseline[name].fds) continue
    const d = {}
    for (const [k, v] of Object.entries(after[name].fdTargets)) if (v !== (baseline[name].fdTargets[k] ?? 0)) d[k] = v - (baseline[name].fdTargets[k] ?? 0)
    fdDiff[name] = d
  }
  // … and where those sockets go (ss by inode): state, local → peer.
  const gwSockets = new Map()
  for (const line of (spawnSync('ss', ['-taneH'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '').split('\n')) {
    const ino = /\bino:(\d+)/.exec(line)?.[1]
    if (ino) { const f = line.trim().split(/\s+/); gwSockets.set(ino, `${f[0]} ${f[3]} -> ${f[4]}`) }
  }
  const fdSockets = {}
  for (const name of Object.keys(fdDiff)) {
    const kinds = {}
    for (const fd of fs.readdirSync(`/proc/${after[name].pid}/fd`)) {
      let t
      try { t = fs.readlinkSync(`/proc/${after[name].pid}/fd/${fd}`) } catch { continue }
      const ino = /^socket:\[(\d+)\]$/.exec(t)?.[1]
      if (!ino) continue
      let d = gwSockets.get(ino) ?? 'not TCP (unix/udp, or gone)'
      d = d.replace(`:${upstreamPort}`, ':UPSTREAM').replace(`:${gwPort} `, ':LISTENER ').replace(/127\.0\.0\.1:\d+/g, (m) => m.endsWith(`:${gwPort}`) ? m : '127.0.0.1:*')
      kinds[d] = (kinds[d] ?? 0) + 1
    }
    fdSockets[name] = kinds
  }
  let accessLines = null
  try { accessLines = Number(spawnSync('wc', ['-l', path.join(logDir, 'access.log')], { encoding: 'utf8' }).stdout.trim().split(/\s+/)[0]) } catch {}
  const runtimeWarn = (() => { try { return fs.readFileSync(path.join(logDir, 'runtime.log'), 'utf8').split('\n').filter((l) => /"level":"(warn|error)"/.test(l)) } catch { return [] } })()
  try { fs.copyFileSync(path.join(logDir, 'runtime.log'), path.join(tmp, 'soak-runtime.log')) } catch {}
  const shedLines = runtimeWarn.filter((l) => /GH_WRN_SHEDDING/.test(l)).length
  const otherWarn = runtimeWarn.filter((l) => !/GH_WRN_SHEDDING/.test(l))
  // How starved the gateway was for CPU by everything else on the host: median over samples of
  // the workers' run-queue wait (ms per s waiting runnable for a CPU).
  const runq = samples.flatMap((x) => Object.entries(x.procs).filter(([k]) => k !== 'primary').map(([, p]) => p.runqMsPerS)).filter((x) => x !== null).sort((a, b) => a - b)
  const host = { runqMedianMsPerS: runq.length ? runq[Math.floor(runq.length / 2)] : null, runqMaxMsPerS: runq.length ? runq.at(-1) : null, loadavg1: samples.map((x) => +x.loadavg1.toFixed(1)) }

  // ---- report ----
  const c = final?.counts ?? {}
  console.log(`\nsoak: ${MINUTES} min at ${rate} req/s offered (${final ? Math.round(c.issued / final.seconds) : '?'} issued/s), gateway ${WORKERS} workers, access log + metrics on, ${reloads.length} reloads; machine: ${os.cpus().length} CPUs, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`)
  console.log('process    RSS MiB warm → end   growth  slope MiB/min  heap MiB warm → end | fds base  peak  after | lag p50 ms  p99max ms  max ms')
  for (const r of rows) {
    console.log(`${r.process.padEnd(9)}  ${String(r.rssWarmMiB).padStart(7)} → ${String(r.rssEndMiB).padStart(6)}  ${String(r.rssGrowthPct).padStart(6)}%  ${String(r.rssSlopeMiBPerMin).padStart(13)}  ${String(r.heapWarmMiB).padStart(8)} → ${String(r.heapEndMiB).padStart(5)} | ${String(r.fdsBaseline).padStart(8)}  ${String(r.fdsPeak).padStart(4)}  ${String(r.fdsAfter).padStart(5)} | ${String(r.lagP50ms).padStart(10)}  ${String(r.lagP99maxms).padStart(9)}  ${String(r.lagMaxms).padStart(6)}`)
  }
  console.log('(lag from prom-client\'s monitorEventLoopDelay, 10 ms resolution: an idle loop reads ~10 ms)')
  if (final) {
    console.log(`requests: issued ${c.issued}, ok ${c.ok} (aborts answered before the abort: ${c.abortTooLate}), failed ${failed.length}; injected: client aborts ${injected.clientAbort}, upstream 503 ${injected.upstream503}, upstream reset ${injected.upstreamReset}, upstream mid-body ${injected.upstreamMidbody} (upstream faults ${faultById.size}, masked by a retry ${faultsMasked})`)
    console.log(`ok by kind: ${Object.entries(final.byKind).map(([k, v]) => `${k} ${v.ok}/${v.n}`).join(', ')} (aborts end aborted by design); latency of plain GETs: p50 ${final.latency.p50} ms, p99 ${final.latency.p99} ms, p99.9 ${final.latency.p999} ms, max ${final.latency.max} ms; generator behind on ${final.behindTicks} ticks; still in flight at the stop: ${final.inflightLeft}`)
  }
  if (failed.length > 0) {
    console.log(`failed requests by status/code: ${JSON.stringify(failedByWhat)}; near a reload (±5 s): ${failed.filter((f) => f.nearReload).length}`)
    for (const f of failed.filter((x) => x.code === 'GH_ERR_OVERLOADED').slice(0, 2)) console.log(`  ${JSON.stringify(f)}`)
    for (const f of failed.filter((x) => x.code !== 'GH_ERR_OVERLOADED').slice(0, 10)) console.log(`  ${JSON.stringify(f)}`)
    // Each 10 s window with failures, beside what the gateway processes were doing then.
    const windows = new Map()
    for (const f of failed) { const w = Math.ceil(f.t / 10) * 10; windows.set(w, (windows.get(w) ?? 0) + 1) }
    for (const [w, n] of [...windows].sort((a, b) => a[0] - b[0])) {
      const smp = samples.find((x) => x.t >= w)
      const desc = smp ? Object.entries(smp.procs).filter(([k]) => k !== 'primary').map(([k, p]) => `${k} cpu ${p.cpuPct}% runq-wait ${p.runqMsPerS} ms/s lag max ${p.lagMaxms} ms`).join('; ') +
        `; load avg ${smp.loadavg1.toFixed(1)}; other processes ${smp.neighbours?.cpuPct ?? '-'}% (${smp.neighbours?.top.join(', ') ?? ''})` : ''
      console.log(`  window ${w - 10}-${w}s: ${n} failed | ${desc}`)
    }
  }
  console.log(`reloads: ${reloads.map((r) => `${Math.round(r.t)}s ${r.ok ? 'ok' : 'FAILED'} ${r.ms ?? ''}ms`).join(', ')}`)
  if (Object.keys(fdDiff).length) {
    console.log(`fds still open after the load (vs baseline): ${JSON.stringify(fdDiff)}`)
    console.log(`their sockets (all of the process's, by state and peer): ${JSON.stringify(fdSockets)}`)
  }
  if (restarted.length) console.log(`worker restarts: ${restarted.map((r) => `${r.process} pids ${r.pids.join(',')}`).join('; ')}`)
  console.log(`access log: ${accessLines} lines; runtime log warn/error lines: ${runtimeWarn.length} (${shedLines} shedding start/stop; runtime log kept at ${path.join(tmp, 'soak-runtime.log')})`)
  for (const l of otherWarn.slice(0, 8)) console.log(`  ${l.slice(0, 300)}`)
  console.log(`host: workers waited for a CPU ${host.runqMedianMsPerS} ms/s (median; max ${host.runqMaxMsPerS}); 1-min load average over the run ${Math.min(...host.loadavg1)}–${Math.max(...host.loadavg1)} on ${os.cpus().length} CPUs`)
  console.log(`goals: ${Object.entries(goals).map(([k, v]) => `${k} ${v ? 'PASS' : 'FAIL'}`).join(', ')}`)

  fs.writeFileSync(path.join(root, 'bench', 'soak.last.json'), JSON.stringify({
    date: new Date().toISOString(), cpus: os.cpus().length, loadavg: os.loadavg(), minutes: MINUTES, warmupS: WARMUP_S, workers: WORKERS,
    capacity, rate, goals, processes: rows, baseline, after, fdDiff, fdSockets,
    requests: final ? { ...final.counts, failed: failed.length, injected, upstreamFaults: faultById.size, faultsMasked, byKind: final.byKind, latency: final.latency, behindTicks: final.behindTicks, inflightLeft: final.inflightLeft } : null,
    failedByWhat, failedNotShed: failed.filter((f) => f.code !== 'GH_ERR_OVERLOADED').slice(0, 500), failedSample: failed.slice(0, 100), upstream: upReport.served, reloads, accessLogLines: accessLines, host, runtimeWarn: runtimeWarn.slice(0, 50),
    stoppedAt, samples,
  }, null, 2))

  gw.kill('SIGTERM')
  await Promise.race([new Promise((r) => gw.once('exit', r)), sleep(35_000)])
  try { up.kill('SIGTERM'); load.kill('SIGTERM') } catch {}
  fs.rmSync(logDir, { recursive: true, force: true })
  cleanup()
  process.exit(0)
}
