import { Pool } from 'undici'
import { catchAllConfig, freePort, sleep, startGateway, startUpstream, tempDir, writeConfig } from './helpers/gateway.ts'
import { startRedis } from './helpers/redis.ts'
const redis = await startRedis()
const arrivals: number[] = []
const up = await startUpstream((_req, res) => { arrivals.push(Date.now()); res.end('ok') })
const gws = [], pools = []
for (let i = 0; i < 2; i++) {
  const port = await freePort(); const dir = tempDir()
  writeConfig(dir, { 'a.yaml': catchAllConfig(port, '/r', [up.origin], { api: `  policies:
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 100, timePeriodInMilliseconds: 1000 }], maxWaitMs: 250, keySelector: { header: x-client } }
`, host: `  sharedStorage: { redis: { address: "${redis.address}" } }\n` }) })
  gws.push(await startGateway(dir)); pools.push(new Pool(`http://127.0.0.1:${port}`, { connections: 16 }))
}
const used = new Map<string, string>()
const poll = setInterval(async () => {
  const keys = (await redis.command('KEYS', 'gh:rl:*')).split('\r\n').filter((l) => l.startsWith('gh:'))
  for (const k of keys) { const v = await redis.command('GET', k); const m = /:(\d+)\r\n$/.exec(v) ?? /\r\n(\d+)\r\n/.exec(v); used.set(k.split(':').pop()!, v.replace(/\r\n/g, ' ')) }
}, 250)
const start = Date.now(); let sent = 0; const ps = []
const statuses = new Map<number, number[]>()
while (Date.now() - start < 6000) {
  const due = Math.floor((Date.now() - start) * 0.3)
  while (sent < due) { const i = sent++; const t0 = Date.now(); ps.push(pools[i % 2].request({ method: 'GET', path: '/r/x', headers: { 'x-client': 'k' } }).then(async (r) => { await r.body.text(); const w = Math.floor(t0/1000); const a = statuses.get(w) ?? [0,0]; a[r.statusCode === 200 ? 0 : 1]++; statuses.set(w, a) })) }
  await sleep(2)
}
await Promise.all(ps); await sleep(300); clearInterval(poll)
const per = new Map<number, number>(); for (const t of arrivals) per.set(Math.floor(t/1000), (per.get(Math.floor(t/1000)) ?? 0) + 1)
console.log('arrivals', [...per].map(([w, n]) => `${w % 1000}:${n}`).join(' '))
console.log('redis used', [...used].map(([w, v]) => `${Number(w) % 1000}:${v}`).join(' | '))
console.log('sent-window 200/429', [...statuses].map(([w, a]) => `${w % 1000}:${a.join('/')}`).join(' '))
for (const g of gws) { const st = await g.status() as any; console.log(st.workers.map((w: any) => JSON.stringify(w.rateLimit)).join(' ')) }
await Promise.all(pools.map((p) => p.close())); await Promise.all(gws.map((g) => g.stop())); await up.close(); await redis.stop()
