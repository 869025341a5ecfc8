#!/usr/bin/env node
// What an access log costs nginx, for scale next to bench/telemetry.mjs: nginx as the proxy
// (one worker on CPU 0, keep-alive upstream pool) in front of the same nginx upstream as
// there (CPU 1), small GETs from wrk on CPU 1, with `access_log off` and with a JSON line
// per request of the same fields and about the same length as Gatehouse's access log
// (log_format escape=json, buffer=256k flush=100ms: Gatehouse's batch and deadline).
// Runs alternate (off, on, off …); prints each run, medians, and the median over rounds of
// each round's on/off ratio. Worker CPU per request is from /proc (utime + stime).
//
// Needs: nginx, wrk, taskset (apt-get install -y nginx-light wrk util-linux). Loopback only,
// bounded in time.
// Usage: node bench/nginx-log-cost.mjs [--seconds 5] [--connections 50] [--rounds 5]
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { cleanup, countLines, freePort, opt, parseWrk, procTicks, CLK_TCK, requireTools, sleep, startNginxUpstream, tmp, waitHttp } from './lib.mjs'

const SECONDS = opt('seconds', 5)
const CONNECTIONS = opt('connections', 50)
const ROUNDS = opt('rounds', 5)
requireTools(['wrk', 'nginx', 'taskset'], 'apt-get install -y wrk nginx-light util-linux')

const upstreamPort = await startNginxUpstream()
const port = await freePort()
const logFile = path.join(tmp, 'proxy-access.log')

// Gatehouse's field order and names; nginx's own variables where it has them.
const FORMAT = `{"time":"$time_iso8601","requestId":"$request_id","traceId":null,"api":"b","route":"b/all#0",` +
  `"method":"$request_method","path":"$uri","status":$status,"bytesIn":$request_length,"bytesOut":$bytes_sent,` +
  `"durationMs":$request_time,"upstream":"$upstream_addr","upstreamStatus":$upstream_status,` +
  `"upstreamMs":$upstream_response_time,"upstreamHeadersMs":$upstream_header_time,"clientIp":"$remote_addr",` +
  `"userAgent":"$http_user_agent","consumer":null,"decidedBy":null,"outcome":null}`

function writeConf(mode) {
  const file = path.join(tmp, `proxy-${mode}.conf`)
  fs.writeFileSync(file, `worker_processes 1;
daemon off;
pid ${tmp}/proxy-${mode}.pid;
error_log ${tmp}/proxy-error.log;
events { worker_connections 4096; }
http {
  log_format gh escape=json '${FORMAT}';
  access_log ${mode === 'on' ? `${logFile} gh buffer=256k flush=100ms` : 'off'};
  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server { listen 127.0.0.1:${port}; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header X-Request-Id $request_id; }
  }
}
`)
  return file
}

function wrk(url) {
  return new Promise((resolve, reject) => {
    const c = spawn('taskset', ['-c', '1', 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => { out += d })
    c.on('exit', (code) => (code === 0 ? resolve(parseWrk(out)) : reject(new Error(`wrk exited ${code}`))))
  })
}

const runs = { off: [], on: [] }
let lines = 0
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ['off', 'on']) {
    fs.rmSync(logFile, { force: true })
    const master = spawn('taskset', ['-c', '0', 'nginx', '-c', writeConf(mode)], { stdio: 'ignore' })
    await waitHttp(`http://127.0.0.1:${port}/`)
    const worker = Number(spawnSync('pgrep', ['-P', String(master.pid), 'nginx'], { encoding: 'utf8' }).stdout.trim().split('\n').at(-1))
    if (!(worker > 0)) throw new Error('no nginx worker found')
    await wrk(`http://127.0.0.1:${port}/`) // warm-up
    const t0 = procTicks(worker)
    const r = await wrk(`http://127.0.0.1:${port}/`)
    r.workerUsPerReq = ((procTicks(worker) - t0) / CLK_TCK) * 1e6 / r.total
    runs[mode].push(r)
    master.kill('SIGQUIT') // graceful: flushes the log buffer
    await new Promise((res) => master.once('exit', res))
    if (mode === 'on') { lines += countLines(logFile); fs.rmSync(logFile, { force: true }) }
    await sleep(200)
  }
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
console.log(`\nnginx as the proxy, 1 worker on CPU 0, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s on CPU 1, ${ROUNDS} alternating rounds`)
console.log('access_log  req/s    worker µs/req   runs (req/s | µs/req)')
for (const mode of ['off', 'on']) {
  const rs = runs[mode]
  console.log(`${mode.padEnd(10)} ${String(Math.round(median(rs.map((r) => r.rps)))).padStart(6)}   ${median(rs.map((r) => r.workerUsPerReq)).toFixed(1).padStart(13)}   ` +
    `${rs.map((r) => Math.round(r.rps)).join(' ')} | ${rs.map((r) => r.workerUsPerReq.toFixed(1)).join(' ')}`)
}
const rpsRatio = median(runs.on.map((r, i) => r.rps / runs.off[i].rps))
const cpuRatio = median(runs.on.map((r, i) => runs.off[i].workerUsPerReq / r.workerUsPerReq))
console.log(`on vs off (median of per-round ratios): req/s ${rpsRatio.toFixed(3)}×, per worker CPU ${cpuRatio.toFixed(3)}×; ${lines} log lines written`)
cleanup()
process.exit(0)
