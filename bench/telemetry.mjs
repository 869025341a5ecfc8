#!/usr/bin/env node
// Cost of telemetry on the request path: small GETs through one gateway worker (pinned to
// CPU 0) with
//   off      no metrics, no access log, no tracing (no subscribers at all);
//   metrics  every request counted, histograms observed, /metrics scraped every second
//            (15x Prometheus' default rate);
//   all      metrics + one access-log line per request to a file + tracing at 1 %
//            sampling exported to an OTLP/HTTP sink in this process (traceparent on every
//            upstream request).
// wrk and the upstream (nginx) run on CPU 1. Scenarios alternate (off, metrics, all, off …)
// so drift on a shared machine hits all of them; prints medians of req/s and of the worker's
// CPU per request (/proc: all its threads, so log writes on the thread pool count), and
// their ratios to off. A ratio is the median over rounds of (this scenario / that round's
// off run): pairs measured a minute apart, so the machine's slow drift (runs here moved
// ±10 % over a few minutes) cancels instead of landing in one scenario's median.
//
// By default ONE gateway runs all scenarios, switched by reload (telemetry is applied in
// place, the worker stays): identical gateways started one after the other differ by up to
// ±5 % here (JIT decisions, memory layout), which was as large as the effect measured.
// --restart starts a fresh gateway per run instead (the method of the first figures).
//
// Needs: npm run build; wrk and nginx on PATH (apt-get install -y wrk nginx-light util-linux).
// Loopback only, bounded in time.
// Usage: node bench/telemetry.mjs [--seconds 5] [--connections 50] [--rounds 3] [--each] [--restart]
//   --each adds 'log' (access log only) and 'trace' (tracing at 1 % only)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { cleanup, countLines, freePort, flag, gatewayPids, opt, parseWrk, procTicks, CLK_TCK, requireTools, root, start, startNginxUpstream, tmp, waitHttp, sleep, writeBenchConfig } from './lib.mjs'

const args = process.argv.slice(2)
const SECONDS = opt('seconds', 5)
const CONNECTIONS = opt('connections', 50)
const ROUNDS = opt('rounds', 3)
const RESTART = flag('restart')

requireTools(['wrk', 'nginx', 'taskset'], 'apt-get install -y wrk nginx-light util-linux')

const upstreamPort = await startNginxUpstream()
await sleep(300)

// An OTLP/HTTP sink: accepts trace exports and counts spans' requests (discarded).
let exports = 0
const sink = http.createServer((req, res) => { req.resume(); req.on('end', () => { exports++; res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') }) })
const sinkPort = await new Promise((r) => sink.listen(0, '127.0.0.1', () => r(sink.address().port)))
sink.unref()

const gwPort = await freePort()
const adminPort = await freePort()
// Which scenario turns on what ('log' and 'trace' alone with --each).
const METRICS = new Set(['metrics', 'all'])
const LOG = new Set(['log', 'all'])
const TRACE = new Set(['trace', 'all'])
function config(scenario) {
  const logs = path.join(tmp, scenario, 'logs')
  return writeBenchConfig(scenario, {
    gwPort, upstreamPort, adminPort,
    host: `  logging: { runtimeLogs: { logLevel: warn }, accessLogs: { enabled: ${LOG.has(scenario)} }${LOG.has(scenario) ? `, directory: ${logs}` : ''} }\n` +
      `  metrics: { enabled: ${METRICS.has(scenario)} }\n` +
      (TRACE.has(scenario) ? `  tracing: { endpoint: "http://127.0.0.1:${sinkPort}", sampling: 0.01 }\n` : ''),
  })
}

/** wrk in a child process, so that the scraper keeps running on this event loop meanwhile. */
function wrk(url) {
  return new Promise((resolve, reject) => {
    const c = spawn('taskset', ['-c', '1', 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => { out += d })
    c.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`wrk exited ${code}`)); return }
      resolve(parseWrk(out))
    })
  })
}

const SCENARIOS = (args.includes('--each') ? ['off', 'metrics', 'log', 'trace', 'all'] : ['off', 'metrics', 'all'])
const runs = Object.fromEntries(SCENARIOS.map((s) => [s, []]))
const gwMain = path.join(root, 'dist/src/cli/main.js')

async function startGw(dir) {
  const gw = start(process.execPath, [gwMain, 'start', '--config', dir])
  await waitHttp(`http://127.0.0.1:${adminPort}/ready`)
  const { workers } = await gatewayPids(adminPort)
  return { gw, worker: workers[0].pid }
}
async function stopGw(gw) {
  gw.kill('SIGTERM')
  await new Promise((res) => gw.once('exit', res))
}
async function configVersion() {
  return (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()).configVersion
}

/** One measured run on a gateway already serving `scenario`'s config. */
async function measure(scenario, worker) {
  await wrk(`http://127.0.0.1:${gwPort}/warmup`) // warm-up (JIT, pools; after a reload, the new subscribers)
  let scraping = METRICS.has(scenario)
  const scraper = (async () => {
    while (scraping) {
      const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
      await r.text()
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`)
      await sleep(1000)
    }
  })()
  const t0 = procTicks(worker)
  const result = await wrk(`http://127.0.0.1:${gwPort}/x`)
  const t1 = procTicks(worker)
  scraping = false
  await scraper
  result.workerUsPerReq = ((t1 - t0) / CLK_TCK) * 1e6 / result.total
  runs[scenario].push(result)
  if (LOG.has(scenario)) emptyAccessLog(scenario)
}

/**
 * After a run with the access log: count its lines ('all' only, for the proof at the end),
 * then empty the file. A run writes ~300 MB; left in place, the kernel's writeback of it
 * (kworker threads, 30 s later) landed in whichever scenario ran next, and runs grew slower
 * round after round. Writeback is the kernel's work for any logging proxy (nginx's too);
 * emptying the file (dirty pages dropped unwritten) keeps it out of every run alike.
 */
let allLines = 0
function emptyAccessLog(scenario) {
  const file = path.join(tmp, scenario, 'logs', 'access.log')
  if (!fs.existsSync(file)) return
  if (scenario === 'all') allLines += countLines(file)
  fs.truncateSync(file, 0)
}

// The live config directory of the reload mode: each scenario's file is copied in, then POST /reload.
const live = path.join(tmp, 'live')
fs.mkdirSync(live, { recursive: true })
let shared = null
if (!RESTART) {
  fs.copyFileSync(path.join(config(SCENARIOS[0]), 'a.yaml'), path.join(live, 'a.yaml'))
  shared = await startGw(live)
}
for (let round = 0; round < ROUNDS; round++) {
  for (const scenario of SCENARIOS) {
    if (RESTART) {
      const { gw, worker } = await startGw(config(scenario))
      await measure(scenario, worker)
      await stopGw(gw)
      continue
    }
    const before = await configVersion()
    fs.copyFileSync(path.join(config(scenario), 'a.yaml'), path.join(live, 'a.yaml'))
    const r = await fetch(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST' })
    await r.text()
    if (r.status !== 200) throw new Error(`reload to ${scenario} answered ${r.status}`)
    if ((await configVersion()) === before && round + SCENARIOS.indexOf(scenario) > 0) throw new Error(`reload to ${scenario} did not change the config`)
    const { workers } = await gatewayPids(adminPort)
    if (workers[0].pid !== shared.worker) throw new Error('the worker changed on reload: the runs would not be comparable')
    await measure(scenario, shared.worker)
  }
}
if (shared !== null) await stopGw(shared.gw)
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const results = Object.entries(runs).map(([scenario, rs]) => ({
  scenario, rps: Math.round(median(rs.map((r) => r.rps))), workerUsPerReq: +median(rs.map((r) => r.workerUsPerReq)).toFixed(2),
  p99ms: median(rs.map((r) => r.p99)), non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
  all: rs.map((r) => Math.round(r.rps)), allUs: rs.map((r) => +r.workerUsPerReq.toFixed(1)),
}))
// Per-round ratios to that round's 'off' run, their median (see the header).
const offRuns = runs[SCENARIOS[0]]
for (const r of results) {
  const rs = runs[r.scenario]
  r.rpsRatio = +median(rs.map((x, i) => x.rps / offRuns[i].rps)).toFixed(3)
  r.cpuRatio = +median(rs.map((x, i) => offRuns[i].workerUsPerReq / x.workerUsPerReq)).toFixed(3)
}
console.log(`\nsmall GET, 1 gateway worker on CPU 0, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s on CPU 1, median of ${ROUNDS} alternating rounds, ` +
  (RESTART ? 'a fresh gateway per run' : 'one gateway switched by reload'))
console.log('scenario   req/s     vs off   worker µs/req  vs off   p99 ms  non-2xx  runs (req/s | µs/req)')
for (const r of results) {
  console.log(`${r.scenario.padEnd(10)} ${String(r.rps).padStart(7)}   ${r.rpsRatio.toFixed(3).padStart(6)}   ${r.workerUsPerReq.toFixed(1).padStart(13)}  ${r.cpuRatio.toFixed(3).padStart(6)}` +
    `   ${r.p99ms.toFixed(2).padStart(6)}  ${String(r.non2xx).padStart(7)}  ${r.all.join(' ')} | ${r.allUs.join(' ')}`)
}
// Proof the 'all' scenario did its work: spans reached the sink and access lines were written.
console.log(`'all': ${exports} OTLP exports received, ${allLines} access-log lines written`)
fs.writeFileSync(path.join(root, 'bench', 'telemetry.last.json'), JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, mode: RESTART ? 'restart' : 'reload', seconds: SECONDS, rounds: ROUNDS, results }, null, 2))
cleanup()
process.exit(0)
