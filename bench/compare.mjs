#!/usr/bin/env node
// Gatehouse against nginx and HAProxy as reverse proxies, on this host, same upstream,
// same load generator, measured in the same run (ratios are within one run only).
//
// Upstream: ONE nginx on CPU 1 shared by all proxies: `/` 100-byte body, `/64k` 64 KiB
// body, `/post` reads a 1 MiB POST body whole, then answers 2 bytes.
// Scenarios (wrk; --connections for a, b, d; --post-connections for c):
//   small  (a) small GET, keep-alive
//   64k    (b) 64 KiB response
//   post   (c) 1 MiB POST (wrk Lua script)
//   chain  (d) Gatehouse with jwt-validation (HS256) + rate-limit on Redis (never rejects)
//              + metrics + access log, against nginx bare from (a)
// Modes:
//   pinned  each proxy on CPU 0 (nginx 1 worker, HAProxy nbthread 1, Gatehouse 1 worker);
//           wrk -t1, the upstream and Redis on CPU 1
//   all     all CPUs: nginx worker_processes auto, HAProxy nbthread = nproc, Gatehouse
//           workers: auto (each pinned per worker/thread to its CPU); wrk -t<nproc> unpinned
// For every (mode, scenario, proxy): a warm-up, then --runs runs, proxies alternating
// within a round so drift hits all of them. Each run samples /proc/stat and /proc/PID/stat
// of every process this script started: the proxy's CPU (all its processes), wrk's, the
// upstream's, Redis' and the CPU used by OTHER processes on the host. A run where others
// used more than --max-others % of one CPU is redone (at most --retries times; the least
// disturbed attempt is kept and all are in the JSON). Also reported: requests per proxy
// CPU-second, and the bytes the upstream read per request (proof the POST body got there).
// Every proxy is checked with a real request per scenario before anything is measured.
//
// Needs: npm run build; nginx, haproxy, wrk, taskset (installed with apt-get when missing
// and root); redis-server optional (without it the chain's rate limit uses the embedded
// store). Loopback only; every load run is bounded by --seconds (and a kill timer).
// Usage: node bench/compare.mjs [--runs 3] [--seconds 5] [--warmup 2] [--connections 100]
//          [--post-connections 16] [--max-others 10] [--retries 2] [--json PATH]
//          [--modes pinned,all] [--scenarios small,64k,post,chain]
//          [--proxies nginx,haproxy,gatehouse] [--quick]
//   --quick: 1 run of 2 s, 1 s warm-up, no retries (a smoke test of the whole pipeline).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { SignJWT } from 'jose'
import {
  CLK_TCK, cleanup, cpuTicks, ensureTools, flag, freePort, hasTool, opt, optStr, parseWrk, procTable,
  processTree, root, sleep, start, startNginxUpstreamProc, tcpBytes, ticksBetween, tmp, waitHttp, writeBenchConfig,
} from './lib.mjs'

if (flag('help')) {
  const lines = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1)
  const head = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')))
  console.log(head.map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
  fs.rmSync(tmp, { recursive: true, force: true })
  process.exit(0)
}
const QUICK = flag('quick')
const RUNS = opt('runs', QUICK ? 1 : 3)
const SECONDS = opt('seconds', QUICK ? 2 : 5)
const WARMUP = opt('warmup', QUICK ? 1 : 2)
const CONNECTIONS = opt('connections', 100)
const POST_CONNECTIONS = opt('post-connections', 16)
const MAX_OTHERS = opt('max-others', 10)
const RETRIES = opt('retries', QUICK ? 0 : 2)
const JSON_OUT = path.resolve(optStr('json', path.join(root, 'bench', 'compare.last.json')))
const MODES = optStr('modes', 'pinned,all').split(',')
const SCENARIO_NAMES = optStr('scenarios', 'small,64k,post,chain').split(',')
const PROXIES = optStr('proxies', 'nginx,haproxy,gatehouse').split(',')
const NPROC = os.availableParallelism()
const POST_BYTES = 1024 * 1024

for (const m of MODES) if (!['pinned', 'all'].includes(m)) { console.error(`bench: unknown mode ${m}`); process.exit(2) }
for (const p of PROXIES) if (!['nginx', 'haproxy', 'gatehouse'].includes(p)) { console.error(`bench: unknown proxy ${p}`); process.exit(2) }
if (NPROC < 2) { console.error('bench: needs at least 2 CPUs (proxy on CPU 0, load and upstream on CPU 1)'); process.exit(2) }

ensureTools(['nginx', 'haproxy', 'wrk', 'taskset'], ['nginx-light', 'haproxy', 'wrk', 'util-linux'])
const GATEHOUSE = path.join(root, 'dist/src/cli/main.js')
if (!fs.existsSync(GATEHOUSE)) { console.error('bench: dist/src/cli/main.js missing: run npm run build (npm run bench:compare does)'); process.exit(2) }

process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })

// ---- scenarios ----
const postLua = path.join(tmp, 'post.lua')
fs.writeFileSync(postLua, `wrk.method = "POST"
wrk.body = string.rep("x", ${POST_BYTES})
wrk.headers["Content-Type"] = "application/octet-stream"
`)
const SCENARIOS = {
  small: { label: '(a) small GET 100 B', path: '/', connections: CONNECTIONS, proxies: PROXIES },
  '64k': { label: '(b) 64 KiB response', path: '/64k', connections: CONNECTIONS, proxies: PROXIES },
  post: { label: '(c) 1 MiB POST', path: '/post', connections: POST_CONNECTIONS, proxies: PROXIES, lua: postLua },
  chain: {
    label: '(d) chain: jwt + rate-limit(Redis) + metrics + access log', path: '/', connections: CONNECTIONS,
    proxies: PROXIES.includes('gatehouse') ? ['chain'] : [], baseline: 'small',
  },
}
for (const s of SCENARIO_NAMES) if (!SCENARIOS[s]) { console.error(`bench: unknown scenario ${s}`); process.exit(2) }
const combos = SCENARIO_NAMES.reduce((n, s) => n + SCENARIOS[s].proxies.length, 0) * MODES.length
const estimate = combos * (WARMUP + RUNS * SECONDS) + MODES.length * 8 + 5
console.log(`bench: ${MODES.join('+')} × ${SCENARIO_NAMES.join(',')} × ${PROXIES.join(',')}: ${combos} measurements of ${RUNS} × ${SECONDS} s (+${WARMUP} s warm-up)`)
console.log(`bench: estimated ${fmtDuration(estimate)} (at most ${fmtDuration(estimate + combos * RUNS * RETRIES * SECONDS)} if every run is redone ${RETRIES}×)`)

// ---- machine ----
function sh(cmd) { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }); return `${r.stdout}${r.stderr}`.trim() }
const machine = {
  nproc: NPROC,
  cpuModel: /Model name:\s+(.*)/.exec(sh('lscpu'))?.[1] ?? os.cpus()[0]?.model,
  os: /PRETTY_NAME="?([^"\n]*)/.exec(sh('cat /etc/os-release'))?.[1] ?? '',
  debianVersion: sh('cat /etc/debian_version 2>/dev/null'),
  kernel: os.release(),
  node: process.version,
  nginx: sh('nginx -v').replace(/^nginx version: /, ''),
  haproxy: sh('haproxy -v').split('\n')[0],
  wrk: sh('wrk -v').split('\n')[0].replace(/\s+Copyright.*/, ''),
  redis: hasTool('redis-server') ? sh('redis-server --version').split(' ').find((w) => w.startsWith('v='))?.slice(2) ?? '' : null,
}
console.log(`bench: ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.os}, kernel ${machine.kernel}, node ${machine.node}, ${machine.nginx}, ${machine.haproxy}, ${machine.wrk}`)

// ---- upstream (shared, CPU 1) and Redis ----
// nginx workers run as an unprivileged user: they must reach the files and temp dirs in tmp.
fs.chmodSync(tmp, 0o711)
fs.mkdirSync(path.join(tmp, 'www'), { recursive: true, mode: 0o755 })
fs.writeFileSync(path.join(tmp, 'www', '64k'), Buffer.alloc(64 * 1024, 'y'), { mode: 0o644 })
fs.writeFileSync(path.join(tmp, 'www', 'post'), 'ok', { mode: 0o644 })
const POST_LOG = path.join(tmp, 'post.log')
const upstream = await startNginxUpstreamProc({
  cpu: '1',
  http: `log_format bodylen '$request_length';\n`,
  // /post reads the whole body before it answers (a plain `return` would answer at once and
  // discard the body in the background, and a proxy may then drop the connection mid-body):
  // the mirror module reads it first (mirror_request_body), the static module then answers
  // 405 to a POST, turned into a 200 with the 2-byte file. Its log line is $request_length
  // (headers + the body it read): proof each forwarded body arrived whole.
  server: `  client_max_body_size 2m; client_body_buffer_size 2m;
  open_file_cache max=16 inactive=600s; open_file_cache_valid 600s;
  location = /64k { root ${tmp}/www; default_type application/octet-stream; etag off; }
  location = /post { mirror /_drop; mirror_request_body on; root ${tmp}/www; default_type text/plain; etag off; error_page 405 =200 $uri;
    access_log ${POST_LOG} bodylen; }
  location = /_drop { internal; return 204; }
`,
})
const stderrOf = (name) => fs.openSync(path.join(tmp, `${name}.stderr`), 'w')
let redis = null
if (hasTool('redis-server')) {
  const port = await freePort()
  const child = start('taskset', ['-c', '1', 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'ignore', stderrOf('redis')] })
  redis = { port, child }
} else {
  console.log('bench: redis-server not found: the chain rate limit uses the embedded store')
}
await waitHttp(`http://127.0.0.1:${upstream.port}/`)

const JWT_SECRET = 'gatehouse-bench-hs256-secret-0123456789abcdef'
const token = await new SignJWT({ sub: 'bench-client', scope: 'bench' })
  .setProtectedHeader({ alg: 'HS256' }).setIssuer('gatehouse-bench').setAudience('bench')
  .setIssuedAt().setExpirationTime('6h').sign(new TextEncoder().encode(JWT_SECRET))

// ---- proxies ----
async function startNginxProxy(mode) {
  const port = await freePort()
  const dir = path.join(tmp, `nginx-proxy-${mode}`)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `worker_processes ${mode === 'pinned' ? 1 : 'auto'};
${mode === 'all' ? 'worker_cpu_affinity auto;\n' : ''}daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream up { server 127.0.0.1:${upstream.port}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    client_max_body_size 2m; client_body_buffer_size 2m;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`)
  const child = start('taskset', ['-c', cpusFor(mode), 'nginx', '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', stderrOf(`nginx-proxy-${mode}`)] })
  await waitHttp(`http://127.0.0.1:${port}/`)
  return { name: 'nginx', port, child }
}

async function startHaproxy(mode) {
  const port = await freePort()
  const threads = mode === 'pinned' ? 1 : NPROC
  const cfg = path.join(tmp, `haproxy-${mode}.cfg`)
  fs.writeFileSync(cfg, `global
  nbthread ${threads}
${mode === 'all' ? `  cpu-map auto:1/1-${threads} 0-${threads - 1}\n` : ''}  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server up 127.0.0.1:${upstream.port}
`)
  const child = start('taskset', ['-c', cpusFor(mode), 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', 'ignore', stderrOf(`haproxy-${mode}`)] })
  await waitHttp(`http://127.0.0.1:${port}/`)
  return { name: 'haproxy', port, child }
}

async function startGatehouse(mode, chain) {
  const port = await freePort()
  const adminPort = await freePort()
  const name = `gatehouse-${chain ? 'chain' : 'bare'}-${mode}`
  const logs = path.join(tmp, name, 'logs')
  const dir = writeBenchConfig(name, {
    gwPort: port, upstreamPort: upstream.port, adminPort, workers: mode === 'pinned' ? 1 : 'auto',
    api: chain ? `  policies:
    - policyRef: { name: jwt-validation }
      config: { algorithms: [HS256], secret: "${JWT_SECRET}", issuer: gatehouse-bench, audience: bench }
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 100000000, timePeriodInMilliseconds: 1000 }], keySelector: { consumer: true } }
` : '',
    host: chain
      ? `  logging: { runtimeLogs: { logLevel: warn }, accessLogs: { enabled: true }, directory: ${logs} }
  metrics: { enabled: true }
  drainTimeoutMs: 2000
${redis ? `  sharedStorage: { redis: { address: "127.0.0.1:${redis.port}" } }\n` : ''}`
      : `  logging: { runtimeLogs: { logLevel: warn }, accessLogs: { enabled: false } }
  metrics: { enabled: false }
  drainTimeoutMs: 2000
`,
  })
  const child = start('taskset', ['-c', cpusFor(mode), process.execPath, GATEHOUSE, 'start', '--config', dir], { stdio: ['ignore', 'ignore', stderrOf(name)] })
  await waitHttp(`http://127.0.0.1:${adminPort}/ready`, 30000)
  for (let i = 0; i < 100; i++) { // /ready may answer < 500 before it is ready
    const r = await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => null)
    if (r?.status === 200) break
    await sleep(100)
  }
  return { name: chain ? 'gatehouse (chain)' : 'gatehouse', port, adminPort, child, logs, runtimeLogs: [path.join(tmp, `${name}.stderr`), path.join(logs, 'runtime.log')] }
}

function cpusFor(mode) { return mode === 'pinned' ? '0' : `0-${NPROC - 1}` }

async function stop(p) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return
  const exited = new Promise((r) => p.child.once('exit', r))
  p.child.kill('SIGTERM')
  const t = setTimeout(() => { try { p.child.kill('SIGTERM') } catch {} }, 5000)
  await Promise.race([exited, sleep(15000)])
  clearTimeout(t)
}

// ---- checks (a real request per scenario, before measuring) ----

async function check(p, scenario) {
  const url = `http://127.0.0.1:${p.port}${SCENARIOS[scenario].path}`
  const fail = (why) => { throw new Error(`check ${p.name} ${scenario}: ${why}`) }
  if (scenario === 'small' || scenario === '64k') {
    const r = await fetch(url)
    const body = Buffer.from(await r.arrayBuffer())
    const want = scenario === 'small' ? 100 : 64 * 1024
    if (r.status !== 200 || body.length !== want) fail(`status ${r.status}, ${body.length} bytes (want 200, ${want})`)
    return `200, ${body.length} B`
  }
  if (scenario === 'post') {
    const offset = postLogSize()
    const r = await fetch(url, { method: 'POST', body: Buffer.alloc(POST_BYTES, 'x'), headers: { 'content-type': 'application/octet-stream' } })
    await r.arrayBuffer()
    if (r.status !== 200) fail(`status ${r.status}`)
    await sleep(100)
    const got = postLogSince(offset)
    if (got.requests !== 1 || got.minBytes < POST_BYTES) fail(`the upstream logged ${got.requests} request(s), ${got.minBytes} bytes (want 1 of >= ${POST_BYTES})`)
    return `200, the upstream read a ${got.minBytes}-byte request`
  }
  // chain: no token → 401; token → 200 with RateLimit headers; Redis counted it
  const anon = await fetch(url)
  await anon.arrayBuffer()
  if (anon.status !== 401) fail(`without a token: status ${anon.status} (want 401)`)
  const evalsBefore = redisEvals()
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  await r.arrayBuffer()
  if (r.status !== 200) fail(`with a token: status ${r.status}`)
  if (!r.headers.has('ratelimit-limit') && !r.headers.has('ratelimit-policy') && !r.headers.has('ratelimit')) fail('no RateLimit headers: rate-limit policy not applied?')
  const evals = redisEvals() - evalsBefore
  return `401 without token, 200 with (${r.headers.get('ratelimit-policy') ?? r.headers.get('ratelimit-limit')})${redis ? `, ${evals} Redis script call(s)` : ', embedded store'}`
}

function postLogSize() { try { return fs.statSync(POST_LOG).size } catch { return 0 } }
/** Requests the upstream logged at /post since `offset`, and the smallest $request_length. */
function postLogSince(offset) {
  let text = ''
  try {
    const fd = fs.openSync(POST_LOG, 'r')
    const size = fs.fstatSync(fd).size
    const buf = Buffer.alloc(Math.max(0, size - offset))
    fs.readSync(fd, buf, 0, buf.length, offset)
    fs.closeSync(fd)
    text = buf.toString('utf8')
  } catch {}
  const lens = text.split('\n').filter(Boolean).map(Number)
  return { requests: lens.length, minBytes: lens.length ? Math.min(...lens) : 0 }
}

function redisEvals() {
  if (!redis || !hasTool('redis-cli')) return 0
  try {
    const info = execFileSync('redis-cli', ['-p', String(redis.port), 'INFO', 'commandstats'], { encoding: 'utf8', timeout: 5000 })
    return [...info.matchAll(/cmdstat_(?:evalsha|eval|fcall):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
  } catch { return 0 }
}

// ---- one wrk run with CPU accounting ----
function wrkArgs(mode, scenario, p, seconds) {
  const s = SCENARIOS[scenario]
  const argv = ['wrk', `-t${mode === 'pinned' ? 1 : NPROC}`, `-c${s.connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency']
  if (s.lua) argv.push('-s', s.lua)
  if (scenario === 'chain') argv.push('-H', `authorization: Bearer ${token}`)
  argv.push(`http://127.0.0.1:${p.port}${s.path}`)
  return mode === 'pinned' ? ['taskset', '-c', '1', ...argv] : argv
}

function runWrk(argv, seconds) {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    c.stdout.on('data', (d) => { out += d })
    c.stderr.on('data', (d) => { err += d })
    const guard = setTimeout(() => c.kill('SIGKILL'), (seconds + 20) * 1000) // wrk never outlives its -d by much
    c.on('close', (code) => {
      clearTimeout(guard)
      if (code !== 0) reject(new Error(`wrk exited ${code}: ${err.trim()}`))
      else resolve(out)
    })
  })
}

const selfTicks = (t) => { const s = t.get(process.pid); return s.ticks + s.childTicks }

async function measure(mode, scenario, p, seconds) {
  const io0 = tcpBytes(upstream.port) // (before t0: `ss` is a child whose CPU would land in wrk's)
  const t0 = procTable()
  const c0 = cpuTicks()
  const log0 = scenario === 'post' ? postLogSize() : 0
  const w0 = Date.now()
  const out = await runWrk(wrkArgs(mode, scenario, p, seconds), seconds)
  const wall = (Date.now() - w0) / 1000
  const t1 = procTable()
  const c1 = cpuTicks()
  const io1 = tcpBytes(upstream.port)
  const newConnections = [...io1.keys()].filter((ino) => !io0.has(ino)).length
  let post = null
  if (scenario === 'post') { await sleep(100); post = postLogSince(log0) }
  const r = parseWrk(out)
  const proxyPids = processTree(t1, p.child.pid)
  const upPids = processTree(t1, upstream.child.pid)
  const redisPids = redis ? processTree(t1, redis.child.pid) : []
  const minePids = processTree(t1, process.pid).filter((pid) => pid !== process.pid)
  // The kernel's softirq threads run loopback network work this bench causes: not "others".
  const softirqPids = [...t1].filter(([, p]) => p.comm.startsWith('ksoftirqd')).map(([pid]) => pid)
  const softirqTicks = ticksBetween(t0, t1, softirqPids)
  const proxyTicks = ticksBetween(t0, t1, proxyPids)
  const upTicks = ticksBetween(t0, t1, upPids)
  const redisTicks = ticksBetween(t0, t1, redisPids)
  // wrk has exited and was reaped by this process: its CPU is in our cutime+cstime.
  const wrkTicks = t1.get(process.pid).childTicks - t0.get(process.pid).childTicks
  const mineTicks = ticksBetween(t0, t1, minePids) + (selfTicks(t1) - selfTicks(t0))
  const busy = c1.busy - c0.busy
  const per = (ticks) => round(100 * ticks / CLK_TCK / wall, 1) // % of one CPU
  const proxyCpuSeconds = proxyTicks / CLK_TCK
  return {
    rps: round(r.rps), p50ms: r.p50, p90ms: r.p90, p99ms: r.p99, requests: r.total, non2xx: r.non2xx, socketErrors: r.errors,
    wallSeconds: round(wall, 2),
    cpu: {
      proxy: per(proxyTicks), wrk: per(wrkTicks), upstream: per(upTicks), redis: per(redisTicks),
      benchOther: per(mineTicks - proxyTicks - wrkTicks - upTicks - redisTicks),
      ksoftirqd: per(softirqTicks), others: per(Math.max(0, busy - mineTicks - softirqTicks)), steal: per(c1.steal - c0.steal), machineBusy: per(busy),
    },
    proxyCpuSeconds: round(proxyCpuSeconds, 2),
    requestsPerProxyCpuSecond: proxyCpuSeconds > 0 ? round(r.total / proxyCpuSeconds) : null,
    // upstream connections open at the end that were not open at the start (keep-alive reuse;
    // a proxy may also have closed idle ones between runs)
    newUpstreamConnections: newConnections,
    // post: requests the upstream logged, with the smallest request it read (headers + body)
    upstreamPosts: post,
  }
}

function flagsOf(run, scenario) {
  const f = []
  if (run.non2xx > 0) f.push(`${run.non2xx} non-2xx`)
  if (run.socketErrors > 0) f.push(`${run.socketErrors} socket errors`)
  if (run.cpu.others > MAX_OTHERS) f.push('others')
  if (run.requests === 0) f.push('no request completed')
  if (run.upstreamPosts && (run.upstreamPosts.minBytes < POST_BYTES || run.upstreamPosts.requests < run.requests)) {
    f.push(`upstream got ${run.upstreamPosts.requests} bodies (smallest ${run.upstreamPosts.minBytes} B) for ${run.requests} responses`)
  }
  return f
}

// ---- main loop ----
const results = []
const checks = []
const gatehouseLogs = []
const startedAt = Date.now()
try {
  for (const mode of MODES) {
    console.log(`\n== mode ${mode}: ${mode === 'pinned' ? 'proxy on CPU 0; wrk -t1, upstream and Redis on CPU 1' : `proxies on CPUs 0-${NPROC - 1}; wrk -t${NPROC} unpinned; upstream and Redis on CPU 1`}`)
    const procs = {}
    if (PROXIES.includes('nginx')) procs.nginx = await startNginxProxy(mode)
    if (PROXIES.includes('haproxy')) procs.haproxy = await startHaproxy(mode)
    if (PROXIES.includes('gatehouse')) procs.gatehouse = await startGatehouse(mode, false)
    if (PROXIES.includes('gatehouse') && SCENARIO_NAMES.includes('chain')) procs.chain = await startGatehouse(mode, true)
    for (const scenario of SCENARIO_NAMES) {
      for (const key of SCENARIOS[scenario].proxies) {
        const detail = await check(procs[key], scenario)
        checks.push({ mode, scenario, proxy: procs[key].name, ok: true, detail })
        console.log(`check ${mode} ${scenario} ${procs[key].name}: ${detail}`)
      }
    }
    for (const scenario of SCENARIO_NAMES) {
      const s = SCENARIOS[scenario]
      if (s.proxies.length === 0) continue
      console.log(`-- ${mode} ${s.label}, ${s.connections} connections, ${RUNS} × ${SECONDS} s`)
      for (const key of s.proxies) await runWrk(wrkArgs(mode, scenario, procs[key], WARMUP), WARMUP) // warm-up (JIT, pools, caches)
      const runs = Object.fromEntries(s.proxies.map((k) => [k, []]))
      for (let i = 0; i < RUNS; i++) {
        for (const key of s.proxies) {
          const attempts = []
          for (let a = 0; a <= RETRIES; a++) {
            const m = await measure(mode, scenario, procs[key], SECONDS)
            attempts.push(m)
            const redo = m.cpu.others > MAX_OTHERS && a < RETRIES
            console.log(`  ${mode} ${scenario} ${procs[key].name.padEnd(17)} run ${i + 1}/${RUNS}${a ? ` (retry ${a})` : ''}: ` +
              `${String(m.rps).padStart(6)} req/s  p50 ${fmtMs(m.p50ms)}  p99 ${fmtMs(m.p99ms)}  ` +
              `CPU% proxy ${m.cpu.proxy} wrk ${m.cpu.wrk} upstream ${m.cpu.upstream}${scenario === 'chain' && redis ? ` redis ${m.cpu.redis}` : ''} ksoftirqd ${m.cpu.ksoftirqd} others ${m.cpu.others}  ` +
              `${m.requestsPerProxyCpuSecond} req/proxy-CPU-s${m.upstreamPosts ? `  upstream read ${m.upstreamPosts.requests} bodies ≥ ${m.upstreamPosts.minBytes} B` : ''}${m.non2xx + m.socketErrors ? `  ERR non-2xx ${m.non2xx} socket ${m.socketErrors}` : ''}${redo ? '  → others too busy, redo' : ''}`)
            if (!redo) break
          }
          const best = attempts.reduce((a, b) => (b.cpu.others < a.cpu.others ? b : a))
          const discardedErrors = attempts.filter((a) => a !== best).reduce((n, a) => n + a.non2xx + a.socketErrors, 0)
          runs[key].push({ ...best, attempts: attempts.length, keptAttempt: attempts.indexOf(best), discardedErrors, flags: flagsOf(best, scenario), retried: attempts.length > 1 ? attempts : undefined })
        }
      }
      for (const key of s.proxies) {
        const rs = runs[key]
        results.push({
          mode, scenario, proxy: procs[key].name, connections: s.connections,
          rps: round(median(rs.map((r) => r.rps))), p50ms: median(rs.map((r) => r.p50ms)), p99ms: median(rs.map((r) => r.p99ms)),
          requestsPerProxyCpuSecond: round(median(rs.map((r) => r.requestsPerProxyCpuSecond ?? 0))),
          proxyCpu: median(rs.map((r) => r.cpu.proxy)), othersMax: Math.max(...rs.map((r) => r.cpu.others)),
          non2xx: rs.reduce((n, r) => n + r.non2xx, 0), socketErrors: rs.reduce((n, r) => n + r.socketErrors, 0),
          // errors in attempts that were redone (and so are not in the medians)
          discardedErrors: rs.reduce((n, r) => n + r.discardedErrors, 0),
          flagged: rs.some((r) => r.flags.length > 0 || r.discardedErrors > 0),
          newUpstreamConnections: rs.reduce((n, r) => n + r.newUpstreamConnections, 0),
          runs: rs,
        })
      }
    }
    if (procs.chain) console.log(`chain ${mode}: ${await chainEvidence(procs.chain)}`)
    for (const p of Object.values(procs)) await stop(p)
    for (const p of Object.values(procs)) {
      if (!p.runtimeLogs) continue
      const codes = runtimeLogCodes(p.runtimeLogs)
      gatehouseLogs.push({ mode, proxy: p.name, codes })
      if (Object.keys(codes).length) console.log(`${p.name} ${mode} runtime log (warn+): ${Object.entries(codes).map(([c, v]) => `${c} ×${v.count} (first: ${v.first})`).join('; ')}`)
    }
  }
} finally {
  cleanup()
  // Reap the upstream and Redis (SIGTERMed by cleanup) so none outlives the bench.
  await Promise.race([Promise.all([upstream.child, redis?.child].filter(Boolean).map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r))))), sleep(5000)])
}

/** Gatehouse's runtime log lines (warn and above, logLevel is warn): count and first message per code. */
function runtimeLogCodes(files) {
  const codes = {}
  for (const file of files) {
    let text = ''
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n')) {
      const code = /"code":"([A-Z0-9_]+)"/.exec(line)?.[1] ?? /\b(GH_[A-Z0-9_]+)\b/.exec(line)?.[1]
      if (!code) continue
      codes[code] ??= { count: 0, first: (/"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line).slice(0, 200) }
      codes[code].count++
    }
  }
  return codes
}

async function chainEvidence(p) {
  const file = path.join(p.logs, 'access.log')
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').length - 1 : 0
  const m = await fetch(`http://127.0.0.1:${p.adminPort}/metrics`).catch(() => null)
  const text = m ? await m.text() : ''
  const series = text.split('\n').filter((l) => l && !l.startsWith('#')).length
  return `${lines} access-log lines written, /metrics ${m?.status ?? 'unreachable'} with ${series} series, ${redisEvals()} Redis script calls in total`
}

// ---- ratios, table, JSON ----
for (const r of results) {
  const baseScenario = SCENARIOS[r.scenario].baseline ?? r.scenario
  const base = results.find((b) => b.mode === r.mode && b.scenario === baseScenario && b.proxy === 'nginx')
  r.vsNginx = base ? round(r.rps / base.rps, 3) : null
  r.cpuEfficiencyVsNginx = base && base.requestsPerProxyCpuSecond ? round(r.requestsPerProxyCpuSecond / base.requestsPerProxyCpuSecond, 3) : null
  r.baseline = base ? `nginx ${baseScenario}` : null
}
const header = ['mode', 'scenario', 'proxy', 'req/s', 'vs nginx', 'p50 ms', 'p99 ms', 'req/proxy-CPU-s', 'vs nginx', 'proxy CPU%', 'others CPU% (max)', 'errors', 'runs req/s']
const rows = results.map((r) => [
  r.mode, r.scenario, r.proxy, String(r.rps), r.vsNginx?.toFixed(3) ?? '-', fmtMs(r.p50ms), fmtMs(r.p99ms),
  String(r.requestsPerProxyCpuSecond), r.cpuEfficiencyVsNginx?.toFixed(3) ?? '-', String(r.proxyCpu), String(r.othersMax),
  r.non2xx + r.socketErrors ? `${r.non2xx + r.socketErrors} ⚠` : '0', r.runs.map((x) => `${x.rps}${x.attempts > 1 ? `(${x.attempts})` : ''}`).join(' '),
])
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
const line = (cells) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`
const table = [line(header), `|${widths.map((w, i) => (i < 3 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n')
console.log(`\nmedian of ${RUNS} run(s) of ${SECONDS} s (after a ${WARMUP} s warm-up); CPU% = % of one CPU; "others" = CPU used by processes this bench did not start;`)
console.log(`chain "vs nginx" is against nginx bare (small GET) of the same mode; runs with (n) were redone n-1 times because others exceeded ${MAX_OTHERS}%.\n`)
console.log(table)
const flagged = results.filter((r) => r.flagged)
if (flagged.length) {
  console.log('\nflagged:')
  for (const r of flagged) {
    const noisy = r.runs.filter((x) => x.flags.includes('others'))
    const other = [...new Set(r.runs.flatMap((x) => x.flags.filter((f) => f !== 'others')))]
    console.log(`  ${r.mode}/${r.scenario}/${r.proxy}: ${[
      noisy.length ? `others > ${MAX_OTHERS}% of a CPU in ${noisy.length} of ${r.runs.length} runs (max ${Math.max(...noisy.map((x) => x.cpu.others))}%)` : '',
      ...other, r.discardedErrors ? `${r.discardedErrors} errors in redone attempts` : ''].filter(Boolean).join('; ')}`)
  }
}
const elapsed = (Date.now() - startedAt) / 1000
console.log(`\ntook ${fmtDuration(elapsed)}`)

const json = {
  date: new Date().toISOString(),
  command: `node bench/compare.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  machine,
  settings: {
    runs: RUNS, seconds: SECONDS, warmupSeconds: WARMUP, connections: CONNECTIONS, postConnections: POST_CONNECTIONS,
    maxOthersPercentOfOneCpu: MAX_OTHERS, retries: RETRIES, modes: MODES, scenarios: SCENARIO_NAMES, proxies: PROXIES,
    chainStore: redis ? 'redis' : 'embedded', clockTicks: CLK_TCK,
  },
  elapsedSeconds: round(elapsed),
  checks,
  gatehouseLogs,
  results,
  table,
}
fs.mkdirSync(path.dirname(JSON_OUT), { recursive: true })
fs.writeFileSync(JSON_OUT, `${JSON.stringify(json, null, 2)}\n`)
console.log(`wrote ${path.relative(process.cwd(), JSON_OUT) || JSON_OUT}`)
try { fs.rmSync(tmp, { recursive: true, force: true }) } catch {}
process.exit(0)

// ---- helpers ----
function median(xs) { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }
function round(x, digits = 0) { const f = 10 ** digits; return Math.round(x * f) / f }
function fmtMs(x) { return Number.isFinite(x) ? (x < 10 ? x.toFixed(2) : x.toFixed(1)) : '-' }
function fmtDuration(s) { return s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s` }
