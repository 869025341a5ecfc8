#!/usr/bin/env node
// Cost of rate limiting on the request path: small GETs through one gateway worker
// (pinned to CPU 0) with no policy, with rate-limit on the embedded store, and with
// rate-limit on Redis, far from the limit. wrk and the upstream (nginx) run on CPU 1.
// Prints median req/s and p99 over 3 runs each, and Redis calls per admitted request.
//
// Needs: npm run build; wrk, nginx and redis-server on PATH
//   (apt-get install -y wrk nginx-light redis-server). Loopback only, bounded in time.
// Usage: node bench/rate-limit.mjs [--seconds 5] [--connections 50]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cleanup, freePort, opt, parseWrk, requireTools, root, start, startNginxUpstream, waitHttp, sleep, writeBenchConfig } from './lib.mjs'

const args = process.argv.slice(2)
const SECONDS = opt('seconds', 5)
const CONNECTIONS = opt('connections', 50)
const RUNS = 3

requireTools(['wrk', 'nginx', 'redis-server', 'taskset'], 'apt-get install -y wrk nginx-light redis-server util-linux')

const upstreamPort = await startNginxUpstream()
const redisPort = await freePort()
start('taskset', ['-c', '1', 'redis-server', '--port', String(redisPort), '--save', '', '--appendonly', 'no'])
await sleep(300)

const gwPort = await freePort()
const adminPort = await freePort()
const policy = (store) => `  policies:
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 1000000000, timePeriodInMilliseconds: 1000 }], keySelector: { header: x-client } }
`
function config(scenario) {
  return writeBenchConfig(scenario, {
    gwPort, upstreamPort, adminPort,
    api: scenario === 'plain' ? '' : policy(scenario),
    host: '  logging: { runtimeLogs: { logLevel: warn } }\n' +
      (scenario === 'redis' ? `  sharedStorage: { redis: { address: "127.0.0.1:${redisPort}" } }\n` : ''),
  })
}

function wrk(url) {
  return parseWrk(execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-H', 'x-client: bench', url], { encoding: 'utf8' }))
}

function redisEvals() {
  const info = execFileSync('redis-cli', ['-p', String(redisPort), 'INFO', 'commandstats'], { encoding: 'utf8' })
  return [...info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
}

const results = []
for (const scenario of ['plain', 'embedded', 'redis']) {
  const gw = start(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'start', '--config', config(scenario)])
  await waitHttp(`http://127.0.0.1:${adminPort}/ready`)
  wrk(`http://127.0.0.1:${gwPort}/warmup`) // warm-up (JIT, pools)
  const before = scenario === 'redis' ? redisEvals() : 0
  const runs = []
  for (let i = 0; i < RUNS; i++) runs.push(wrk(`http://127.0.0.1:${gwPort}/x`))
  const calls = scenario === 'redis' ? redisEvals() - before : null
  runs.sort((a, b) => a.rps - b.rps)
  const med = runs[1]
  const requests = runs.reduce((n, r) => n + r.total, 0)
  results.push({ scenario, rps: Math.round(med.rps), p99ms: med.p99, non2xx: runs.reduce((n, r) => n + r.non2xx, 0), redisCalls: calls, requestsPerRedisCall: calls ? Math.round(requests / calls) : null })
  gw.kill('SIGTERM')
  await new Promise((r) => gw.once('exit', r))
}
const base = results[0].rps
console.log(`\nsmall GET, 1 gateway worker on CPU 0, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s on CPU 1, median of ${RUNS}`)
console.log('scenario   req/s     vs plain  p99 ms  non-2xx  requests/Redis call')
for (const r of results) {
  console.log(`${r.scenario.padEnd(10)} ${String(r.rps).padStart(7)}   ${(r.rps / base).toFixed(3).padStart(6)}   ${r.p99ms.toFixed(2).padStart(6)}  ${String(r.non2xx).padStart(7)}  ${r.requestsPerRedisCall ?? '-'}`)
}
fs.writeFileSync(path.join(root, 'bench', 'rate-limit.last.json'), JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, results }, null, 2))
cleanup()
process.exit(0)
