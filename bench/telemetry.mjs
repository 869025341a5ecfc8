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
// so drift on a shared machine hits all of them; prints medians and the ratio to off.
//
// Needs: npm run build; wrk and nginx on PATH (apt-get install -y wrk nginx-light util-linux).
// Loopback only, bounded in time.
// Usage: node bench/telemetry.mjs [--seconds 5] [--connections 50] [--rounds 3] [--each]
//   --each adds 'log' (access log only) and 'trace' (tracing at 1 % only)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { cleanup, freePort, opt, parseWrk, requireTools, root, start, startNginxUpstream, tmp, waitHttp, sleep, writeBenchConfig } from './lib.mjs'

const args = process.argv.slice(2)
const SECONDS = opt('seconds', 5)
const CONNECTIONS = opt('connections', 50)
const ROUNDS = opt('rounds', 3)

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
for (let round = 0; round < ROUNDS; round++) {
  for (const scenario of SCENARIOS) {
    const gw = start(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'start', '--config', config(scenario)])
    await waitHttp(`http://127.0.0.1:${adminPort}/ready`)
    await wrk(`http://127.0.0.1:${gwPort}/warmup`) // warm-up (JIT, pools)
    let scraping = METRICS.has(scenario)
    const scraper = (async () => {
      while (scraping) {
        const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
        await r.text()
        if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`)
        await sleep(1000)
      }
    })()
    const result = await wrk(`http://127.0.0.1:${gwPort}/x`)
    scraping = false
    await scraper
    runs[scenario].push(result)
    gw.kill('SIGTERM')
    await new Promise((res) => gw.once('exit', res))
  }
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const results = Object.entries(runs).map(([scenario, rs]) => ({
  scenario, rps: Math.round(median(rs.map((r) => r.rps))), p99ms: median(rs.map((r) => r.p99)), non2xx: rs.reduce((n, r) => n + r.non2xx, 0), all: rs.map((r) => Math.round(r.rps)),
}))
const base = results[0].rps
console.log(`\nsmall GET, 1 gateway worker on CPU 0, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s on CPU 1, median of ${ROUNDS} alternating rounds`)
console.log('scenario   req/s     vs off   p99 ms  non-2xx  runs')
for (const r of results) {
  console.log(`${r.scenario.padEnd(10)} ${String(r.rps).padStart(7)}   ${(r.rps / base).toFixed(3).padStart(6)}   ${r.p99ms.toFixed(2).padStart(6)}  ${String(r.non2xx).padStart(7)}  ${r.all.join(' ')}`)
}
// Proof the 'all' scenario did its work: spans reached the sink and access lines were written.
const accessLog = path.join(tmp, 'all', 'logs', 'access.log')
const lines = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n').length - 1 : 0
console.log(`'all': ${exports} OTLP exports received, ${lines} access-log lines written`)
fs.writeFileSync(path.join(root, 'bench', 'telemetry.last.json'), JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, results }, null, 2))
cleanup()
process.exit(0)
