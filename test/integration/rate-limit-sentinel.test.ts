import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { catchAllConfig, freePort, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'
import { startRedis, startSentinel, type RedisServer } from '../helpers/redis.js'

describe('rate limiting through Redis found by Sentinel', () => {
  let redis: RedisServer
  let sentinel: Awaited<ReturnType<typeof startSentinel>>
  let up: Upstream
  let gw: Gateway
  let port: number

  before(async () => {
    redis = await startRedis()
    sentinel = await startSentinel(redis)
    up = await startUpstream((_req, res) => res.end('ok'))
    port = await freePort()
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': catchAllConfig(port, '/s', [up.origin], {
        api: `  policies:
    - policyRef: { name: rate-limit }
      config: { rateLimits: [{ maximumRequests: 4, timePeriodInMilliseconds: 3600000 }], keySelector: { header: x-client }, maxWaitMs: 1000 }
`,
        host: `  sharedStorage: { redis: { sentinel: { name: main, addresses: ["${sentinel.address}"] } } }\n`,
      }),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
    await sentinel?.stop()
    await redis?.stop()
  })

  test('the limit is kept in the Redis the sentinel names: exact, and its counter is in that Redis', async () => {
    const client = `sentinel-${Date.now()}`
    const statuses: number[] = []
    for (let i = 0; i < 7; i++) {
      const r = await request(`http://127.0.0.1:${port}/s/x`, { headers: { 'x-client': client, connection: 'close' } })
      await r.body.text()
      statuses.push(r.statusCode)
    }
    assert.deepEqual(statuses.filter((s) => s === 200).length, 4)
    assert.deepEqual(statuses.slice(4), [429, 429, 429])
    const keys = await redis.command('KEYS', `gh:rl:*${client}*`)
    assert.match(keys, new RegExp(client), 'the counter lives in the master Redis')
  })
})
