#!/usr/bin/env node
// Slow-client attacks against the gateway with slowhttptest, while a probe checks that
// ordinary clients are still served. Scenarios (each --seconds long, --connections slow
// connections opened at 200/s):
//   headers  slowhttptest -H (Slowloris): request heads that never complete, a header line every 10 s
//   body     slowhttptest -B (R-U-Dead-Yet): POSTs announcing 8 KiB, body trickled every 10 s
//   read     slowhttptest -X (Slow Read): GET /big (1 MiB) read a few bytes a second, tiny window
// During each, a probe sends one ordinary GET at a time (new connection, 5 s timeout) every
// 100 ms. Printed per scenario: what slowhttptest saw over time (connected / pending /
// closed), the gateway side (established TCP connections on the listener and to the
// upstream, worker fds, CPU and run-queue wait: time runnable but waiting for a CPU, which
// tells a starved worker from a busy one), when the slow connections were closed, and the
// probe's success rate and latency. Results: bench/slowloris.last.json.
//
// Gateway: 2 workers (--workers), default timeouts, metrics on, started with ulimit -n 65536
// (or the hard limit, if lower; both recorded). --connections-per-endpoint N routes to a
// Service with that pool size (default 128 per worker), to compare against the body attack.
// Upstream: nginx (one worker, CPU 1) with a 100-byte body on /, a 1 MiB file on /big, and
// /slow, where nginx reads the whole request body before answering (as an application would).
// Needs: npm run build; slowhttptest, nginx, taskset (installed with apt-get when missing
// and root). Loopback only; every scenario is bounded (--seconds + 30 s at most).
// Usage: node bench/slowloris.mjs [--seconds 60] [--connections 1000] [--workers 2]
//                                 [--scenarios headers,body,read] [--connections-per-endpoint N]
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {
  CLK_TCK, cleanup, ensureTools, fdCount, procTicks, schedNs, fdTargets, freePort, gatewayPids, nofileLimit, opt, optStr, promSamples, root, rssKiB, sleep,
  startGateway, startNginxUpstreamProc, tmp, waitHttp, writeBenchConfig,
} from './lib.mjs'

const SECONDS = opt('seconds', 60)
const CONNECTIONS = opt('connections', 1000)
const WORKERS = optStr('workers', '2')
const SCENARIOS = optStr('scenarios', 'headers,body,read').split(',')
// The upstream Service's connectionsPerEndpoint (pool size per worker); unset = the default (128).
const POOL = opt('connections-per-endpoint', null)
const PROBE_EVERY_MS = 100
const PROBE_TIMEOUT_MS = 5000
const RSS_ABORT_KIB = 2 * 1024 * 1024 // stop a scenario if a worker passes 2 GiB

ensureTools(['slowhttptest', 'nginx', 'taskset', 'ss'], ['slowhttptest', 'nginx-light', 'util-linux', 'iproute2'])
if (!fs.existsSync(path.join(root, 'dist/src/cli/main.js'))) { console.error('bench: run npm run build first'); process.exit(2) }

// ---- upstream and gateway ----
// nginx's workers run as nobody: the file must be readable by them (lib's tmp is 0700).
const bigDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-slowloris-'))
fs.chmodSync(bigDir, 0o755)
const big = path.join(bigDir, 'big.bin')
fs.writeFileSync(big, Buffer.alloc(1024 * 1024, 'b'), { mode: 0o644 })
process.on('exit', () => fs.rmSync(bigDir, { recursive: true, force: true }))
// /slow goes through nginx's own proxy (request buffering on), so nginx reads the whole
// body before it answers, like an application would; a bare `return 200` answers at once.
const inner = await freePort()
const upstream = await startNginxUpstreamProc({
  http: `server { listen 127.0.0.1:${inner}; location / { return 200 "${'x'.repeat(100)}"; } }\n`,
  server: `  client_body_timeout 120s;\n  location = /big { default_type application/octet-stream; alias ${big}; }\n` +
    `  location /slow { proxy_pass http://127.0.0.1:${inner}; proxy_request_buffering on; }\n`,
})
await sleep(300)
const gwPort = await freePort()
const adminPort = await freePort()
const dir = writeBenchConfig('slowloris', { gwPort, upstreamPort: upstream.port, adminPort, workers: WORKERS })
if (POOL !== null) {
  // Route to a Service resource instead of the inline address, to set its pool size.
  const file = path.join(dir, 'a.yaml')
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(`address: http://127.0.0.1:${upstream.port}`, 'service: up') +
    `---\napiVersion: gatehouse/v1\nkind: Service\nmetadata: { name: up }\nspec:\n  endpoints: [http://127.0.0.1:${upstream.port}]\n  connectionsPerEndpoint: ${POOL}\n`)
}
const gw = startGateway(dir)
await waitHttp(`http://127.0.0.1:${adminPort}/ready`, 30_000).catch((err) => { console.error(`${err.message}\n--- gateway output ---\n${gw.output()}`); cleanup(); process.exit(1) })
const pids = await gatewayPids(adminPort)
const limits = { primary: nofileLimit(pids.primary), workers: pids.workers.map((w) => nofileLimit(w.pid)), bench: nofileLimit(process.pid) }
console.log(`gateway :${gwPort} primary ${pids.primary}, workers ${pids.workers.map((w) => w.pid).join(' ')}; Max open files: primary ${limits.primary}, workers ${limits.workers.join('/')}`)
const url = `http://127.0.0.1:${gwPort}`
// Each scenario's target answers through the gateway as expected before it is attacked.
for (const [p, init, len] of [['/probe', {}, 100], ['/big', {}, 1024 * 1024], ['/slow', { method: 'POST', body: 'a=b' }, 100]]) {
  const r = await fetch(`${url}${p}`, init)
  const n = (await r.arrayBuffer()).byteLength
  if (r.status !== 200 || n !== len) { console.error(`bench: ${p} through the gateway answered ${r.status} with ${n} bytes, expected 200 with ${len}`); cleanup(); process.exit(1) }
}

// ---- observation ----
/** Server-side TCP states on the gateway's listener port (from ss): { ESTAB: n, ... }. */
function listenerStates(filter = `( sport = :${gwPort} )`) {
  return new Promise((resolve) => {
    const c = spawn('ss', ['-Htan', filter], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    c.stdout.on('data', (d) => { out += d })
    const t = setTimeout(() => c.kill(), 5000)
    c.on('close', () => {
      clearTimeout(t)
      const states = {}
      for (const line of out.split('\n')) {
        const st = line.trim().split(/\s+/)[0]
        if (st && st !== 'LISTEN') states[st] = (states[st] ?? 0) + 1
      }
      resolve(states)
    })
  })
}

/** Ticks the whole machine spent busy (/proc/stat: all but idle and iowait). */
function cpuBusy() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  return f.reduce((a, b) => a + b, 0) - f[3] - f[4]
}

/** One ordinary GET on a new connection. */
function probeOnce() {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let done = false
    const finish = (r) => { if (!done) { done = true; resolve({ ...r, ms: performance.now() - t0 }) } }
    const req = http.get(`${url}/probe`, { agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let n = 0
      res.on('data', (d) => { n += d.length })
      res.on('end', () => finish({ ok: res.statusCode === 200 && n === 100, status: res.statusCode }))
      res.on('error', (e) => finish({ ok: false, error: e.code ?? e.message }))
    })
    req.on('timeout', () => { req.destroy(new Error('probe timeout')); finish({ ok: false, error: 'timeout' }) })
    req.on('error', (e) => finish({ ok: false, error: e.code ?? e.message }))
  })
}

/** Gateway counters from /metrics: requests by status class, shed by reason, client aborts. */
async function counters() {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const sum = (name, label) => {
    const out = {}
    for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
      const k = label ? (new RegExp(`${label}="([^"]*)"`).exec(m[1])?.[1] ?? '') : 'all'
      out[k] = (out[k] ?? 0) + Number(m[2])
    }
    return out
  }
  return { requests: sum('gatehouse_requests_total', 'status_class'), shed: sum('gatehouse_requests_shed_total', 'reason'), clientAborts: sum('gatehouse_client_aborts_total'), lagMaxS: Object.fromEntries(promSamples(text, 'nodejs_eventloop_lag_max_seconds')) }
}
const diff = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]).filter(([, v]) => v !== 0))

const quantile = (xs, q) => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const probeSummary = (ps) => {
  const lat = ps.filter((p) => p.ok).map((p) => p.ms)
  const errors = {}
  for (const p of ps) if (!p.ok) { const k = p.error ?? `status ${p.status}`; errors[k] = (errors[k] ?? 0) + 1 }
  return {
    sent: ps.length, ok: lat.length, successPct: ps.length ? +(100 * lat.length / ps.length).toFixed(2) : NaN,
    p50ms: +quantile(lat, 0.5).toFixed(2), p99ms: +quantile(lat, 0.99).toFixed(2), maxms: +Math.max(...ps.map((p) => p.ms)).toFixed(1), errors,
  }
}

/** slowhttptest's CSV: Seconds,Closed,Pending,Connected,Service Available. */
function readCsv(file) {
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').trim().split('\n').slice(1).map((l) => {
    const [s, closed, pending, connected, available] = l.split(',').map(Number)
    return { s, closed, pending, connected, available }
  })
}

const FLAGS = {
  headers: ['-H', '-i', '10', '-t', 'GET', '-x', '24', '-u', `${url}/slow`],
  body: ['-B', '-i', '10', '-s', '8192', '-t', 'POST', '-x', '24', '-u', `${url}/slow`],
  read: ['-X', '-k', '1', '-n', '1', '-w', '512', '-y', '1024', '-z', '32', '-u', `${url}/big`],
}

async function scenario(name) {
  const prefix = path.join(tmp, `slow-${name}`)
  const argv = [...FLAGS[name], '-c', String(CONNECTIONS), '-r', '200', '-p', '3', '-l', String(SECONDS), '-g', '-o', prefix]
  const workers = (await gatewayPids(adminPort)).workers
  const baseline = { listener: await listenerStates(), fds: workers.map((w) => fdCount(w.pid)), rssKiB: workers.map((w) => rssKiB(w.pid)) }
  console.log(`\n== ${name}: slowhttptest ${argv.join(' ')}`)
  const c0 = await counters()
  const logAt = gw.output().length
  const t0 = Date.now()
  const st = spawn('sh', ['-c', 'ulimit -n 65536 2>/dev/null; exec slowhttptest "$@"', 'slowhttptest', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stOut = ''
  st.stdout.on('data', (d) => { stOut += d })
  st.stderr.on('data', (d) => { stOut += d })
  let running = true
  const exited = new Promise((r) => st.on('exit', (code) => { running = false; r(code) }))
  const guard = setTimeout(() => st.kill('SIGTERM'), (SECONDS + 30) * 1000)

  const probes = []
  const prober = (async () => {
    while (running) {
      const at = Date.now()
      const r = await probeOnce()
      probes.push({ t: (at - t0) / 1000, ...r })
      await sleep(Math.max(0, PROBE_EVERY_MS - (Date.now() - at)))
    }
  })()
  const samples = []
  let aborted = null
  const sampler = (async () => {
    while (running) {
      const at = Date.now()
      const s = {
        t: Math.round((at - t0) / 1000), listener: await listenerStates(), fds: workers.map((w) => fdCount(w.pid)), rssKiB: workers.map((w) => rssKiB(w.pid)),
        upstreamEstab: (await listenerStates(`( dport = :${upstream.port} )`)).ESTAB ?? 0, // gateway → nginx connections
        ticks: workers.map((w) => procTicks(w.pid)), busy: cpuBusy(), sched: workers.map((w) => schedNs(w.pid)),
      }
      samples.push(s)
      if (s.rssKiB.some((r) => r > RSS_ABORT_KIB) && !aborted) { aborted = `worker RSS ${Math.max(...s.rssKiB)} KiB > ${RSS_ABORT_KIB}`; st.kill('SIGTERM') }
      await sleep(Math.max(0, 1000 - (Date.now() - at)))
    }
  })()
  const code = await exited
  clearTimeout(guard)
  await prober
  await sampler
  const elapsed = (Date.now() - t0) / 1000
  const csv = readCsv(`${prefix}.csv`)
  const clean = stOut.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
  const exitStatus = /Exit status:\s*(.*)/.exec(clean)?.[1]?.trim() ?? `exit code ${code}`

  // After the attack: how long until the listener is back to its baseline.
  const fdTargetsAtEnd = workers.map((w) => fdTargets(w.pid))
  let settledAfter = null
  const endWait = Date.now()
  while (Date.now() - endWait < 20_000) {
    const ls = await listenerStates()
    if ((ls.ESTAB ?? 0) <= (baseline.listener.ESTAB ?? 0)) { settledAfter = (Date.now() - endWait) / 1000; break }
    await sleep(500)
  }
  // … and until the workers' fds are (upstream keep-alive connections time out after 4 s).
  let fdsSettledAfter = null
  while (Date.now() - endWait < 30_000) {
    if (workers.every((w, i) => fdCount(w.pid) <= baseline.fds[i] + 2)) { fdsSettledAfter = (Date.now() - endWait) / 1000; break }
    await sleep(500)
  }
  const after = { listener: await listenerStates(), fds: workers.map((w) => fdCount(w.pid)), rssKiB: workers.map((w) => rssKiB(w.pid)), fdTargets: workers.map((w) => fdTargets(w.pid)) }
  const c1 = await counters()
  const metrics = { requests: diff(c0.requests, c1.requests), shed: diff(c0.shed, c1.shed), clientAborts: diff(c0.clientAborts, c1.clientAborts), lagMaxS: c1.lagMaxS }
  const gwLog = gw.output().slice(logAt).split('\n').filter(Boolean).slice(-20)

  // Timeline in 5 s bins: slowhttptest's view (CSV, last row of the bin), the gateway's
  // (max established on the listener, max worker fds), and the probe's.
  const timeline = []
  const lastS = Math.max(elapsed, csv.at(-1)?.s ?? 0)
  for (let b = 0; b <= lastS; b += 5) {
    const rows = csv.filter((r) => r.s >= b && r.s < b + 5)
    const smp = samples.filter((s) => s.t >= b && s.t < b + 5)
    const pr = probes.filter((p) => p.t >= b && p.t < b + 5)
    const last = rows.at(-1)
    timeline.push({
      t: b,
      connected: last?.connected ?? null, pending: last?.pending ?? null, closed: last?.closed ?? null,
      gwEstab: smp.length ? Math.max(...smp.map((s) => s.listener.ESTAB ?? 0)) : null,
      gwFds: smp.length ? Math.max(...smp.map((s) => s.fds.reduce((a, x) => a + (x ?? 0), 0))) : null,
      gwUp: smp.length ? Math.max(...smp.map((s) => s.upstreamEstab)) : null,
      // CPU over the bin: the workers' (each, % of one CPU) and the whole machine's (% of all CPUs).
      workerCpuPct: smp.length > 1 ? workers.map((_, i) => Math.round(100 * (smp.at(-1).ticks[i] - smp[0].ticks[i]) / CLK_TCK / (smp.at(-1).t - smp[0].t || 1))) : null,
      // How long the workers' main threads waited for a CPU while runnable (ms per s): starvation.
      workerRunqMsPerS: smp.length > 1 ? workers.map((_, i) => Math.round((smp.at(-1).sched[i]?.wait - smp[0].sched[i]?.wait) / 1e6 / (smp.at(-1).t - smp[0].t || 1))) : null,
      machineCpuPct: smp.length > 1 ? Math.round(100 * (smp.at(-1).busy - smp[0].busy) / CLK_TCK / (smp.at(-1).t - smp[0].t || 1) / os.cpus().length) : null,
      probe: probeSummary(pr),
    })
  }
  const firstClosed = csv.find((r) => r.closed > 0)?.s ?? null
  const peak = csv.reduce((m, r) => Math.max(m, r.connected), 0)
  const peakAt = csv.find((r) => r.connected === peak)?.s ?? null
  // slowhttptest writes no CSV row for the second in which the last connection closed: then its exit is the time.
  const allClosed = csv.find((r) => r.s > (peakAt ?? 0) && r.connected === 0 && r.pending === 0 && r.closed > 0)?.s ??
    (/No open connections left/.test(exitStatus) ? Math.round(elapsed) : null)
  // The gateway's side, from the 1 s samples of the listener: when established connections
  // first fell below 90 % of their peak, and when they were back to the baseline (probe aside).
  const estab = samples.map((s) => ({ t: s.t, n: s.listener.ESTAB ?? 0 }))
  const gwPeak = Math.max(0, ...estab.map((e) => e.n))
  const gwPeakAt = estab.find((e) => e.n === gwPeak)?.t ?? 0
  const gwFirstDrop = estab.find((e) => e.t > gwPeakAt && e.n < 0.9 * gwPeak)?.t ?? null
  const gwAllClosed = estab.find((e) => e.t > gwPeakAt && e.n <= (baseline.listener.ESTAB ?? 0) + 2)?.t ?? null
  const result = {
    scenario: name, argv, seconds: +elapsed.toFixed(1), exitStatus, aborted,
    slowhttptest: { peakConnected: peak, peakAt, firstClosedAt: firstClosed, allClosedAt: allClosed, final: csv.at(-1) ?? null, serviceAvailableRows: csv.filter((r) => r.available > 0).length, rows: csv.length },
    gateway: {
      baseline, peakEstab: Math.max(0, ...samples.map((s) => s.listener.ESTAB ?? 0)), peakUpstreamConns: Math.max(0, ...samples.map((s) => s.upstreamEstab)),
      peakWorkerFds: workers.map((_, i) => Math.max(0, ...samples.map((s) => s.fds[i] ?? 0))),
      peakWorkerRssKiB: workers.map((_, i) => Math.max(0, ...samples.map((s) => s.rssKiB[i] ?? 0))),
      peakEstabAt: gwPeakAt, estabFirstDropAt: gwFirstDrop, estabBackToBaselineAt: gwAllClosed,
      fdTargetsAtEnd, after, listenerBackToBaselineAfterS: settledAfter, fdsBackToBaselineAfterS: fdsSettledAfter,
    },
    probe: probeSummary(probes),
    metrics, gatewayLog: gwLog,
    timeline,
  }
  printScenario(result)
  return result
}

function printScenario(r) {
  const pad = (x, n) => String(x ?? '-').padStart(n)
  console.log(`slowhttptest: ${r.exitStatus}; peak ${r.slowhttptest.peakConnected} connected at ${r.slowhttptest.peakAt}s; first closed at ${r.slowhttptest.firstClosedAt ?? '-'}s; all closed at ${r.slowhttptest.allClosedAt ?? '-'}s${r.aborted ? `; ABORTED: ${r.aborted}` : ''}`)
  console.log(`gateway listener: peak ${r.gateway.peakEstab} established at ${r.gateway.peakEstabAt}s; below 90 % from ${r.gateway.estabFirstDropAt ?? '-'}s; back to baseline at ${r.gateway.estabBackToBaselineAt ?? '-'}s (attack ended at ${r.seconds}s)`)
  console.log('    t  connected  pending  closed | gw estab  gw→up  gw fds  wrk cpu%  runq ms/s  host% | probe ok%    p50ms   p99ms   maxms  errors')
  for (const b of r.timeline) {
    const errs = Object.entries(b.probe.errors).map(([k, v]) => `${k}:${v}`).join(' ')
    console.log(`${pad(b.t, 5)}  ${pad(b.connected, 9)}  ${pad(b.pending, 7)}  ${pad(b.closed, 6)} | ${pad(b.gwEstab, 8)}  ${pad(b.gwUp, 5)}  ${pad(b.gwFds, 6)}  ${pad(b.workerCpuPct?.join('+'), 8)}  ${pad(b.workerRunqMsPerS?.join('+'), 9)}  ${pad(b.machineCpuPct, 5)} | ${pad(b.probe.successPct, 9)}  ${pad(b.probe.p50ms, 7)} ${pad(b.probe.p99ms, 7)} ${pad(b.probe.maxms, 7)}  ${errs}`)
  }
  const p = r.probe
  console.log(`probe overall: ${p.ok}/${p.sent} ok (${p.successPct}%), p50 ${p.p50ms} ms, p99 ${p.p99ms} ms, max ${p.maxms} ms${Object.keys(p.errors).length ? `, errors ${JSON.stringify(p.errors)}` : ''}`)
  const g = r.gateway
  console.log(`gateway /metrics during the attack: requests by class ${JSON.stringify(r.metrics.requests)}, shed ${JSON.stringify(r.metrics.shed)}, client aborts ${JSON.stringify(r.metrics.clientAborts)}`)
  for (const l of r.gatewayLog) console.log(`  gateway log: ${l.slice(0, 240)}`)
  console.log(`gateway: peak ${g.peakEstab} established on the listener, ${g.peakUpstreamConns} to the upstream; worker fds baseline ${g.baseline.fds.join('/')} peak ${g.peakWorkerFds.join('/')} after ${g.after.fds.join('/')}; worker RSS MiB peak ${g.peakWorkerRssKiB.map((k) => (k / 1024).toFixed(0)).join('/')}; listener back to baseline ${g.listenerBackToBaselineAfterS ?? '>20'} s and worker fds ${g.fdsBackToBaselineAfterS ?? '>30'} s after the attack`)
}

const results = []
for (const name of SCENARIOS) {
  if (!FLAGS[name]) { console.error(`unknown scenario ${name}`); continue }
  results.push(await scenario(name))
  await sleep(2000)
}
const final = await gatewayPids(adminPort)
const restarts = final.workers.reduce((n, w) => n + w.restarts, 0)
console.log(`\nworker restarts during the run: ${restarts}`)
console.log(`\n${CONNECTIONS} slow connections per scenario, ${SECONDS} s at most; times in s from the attack's start; gateway ${WORKERS} workers`)
console.log('scenario  st peak conn  first closed  all closed  ended | gw peak estab  <90% at  baseline at | probe ok%   p50ms   p99ms   maxms | worker fds base/peak/after')
for (const r of results) {
  const s = r.slowhttptest
  const g = r.gateway
  const col = (x, n) => String(x ?? '-').padStart(n)
  console.log(`${r.scenario.padEnd(8)}  ${col(s.peakConnected, 12)}  ${col(s.firstClosedAt, 12)}  ${col(s.allClosedAt, 10)}  ${col(Math.round(r.seconds), 5)} | ${col(g.peakEstab, 13)}  ${col(g.estabFirstDropAt, 7)}  ${col(g.estabBackToBaselineAt, 11)} | ${col(r.probe.successPct, 9)} ${col(r.probe.p50ms, 7)} ${col(r.probe.p99ms, 7)} ${col(r.probe.maxms, 7)} | ${g.baseline.fds.join('+')} / ${g.peakWorkerFds.join('+')} / ${g.after.fds.join('+')}`)
}
fs.writeFileSync(path.join(root, 'bench', 'slowloris.last.json'), JSON.stringify({
  date: new Date().toISOString(), cpus: os.cpus().length, connections: CONNECTIONS, seconds: SECONDS, workers: WORKERS, connectionsPerEndpoint: POOL ?? 'default',
  maxOpenFiles: limits, workerRestarts: restarts, results,
}, null, 2))
gw.kill('SIGTERM')
await Promise.race([new Promise((r) => gw.once('exit', r)), sleep(30_000)])
cleanup()
process.exit(0)
