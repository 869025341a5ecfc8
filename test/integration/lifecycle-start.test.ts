import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { catchAllConfig, freePort, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

describe('start-up refuses ports another process holds', () => {
  const cleanup: Array<() => Promise<unknown> | unknown> = []
  after(async () => { for (const c of cleanup.reverse()) await c() })

  async function config(port: number, up: Upstream): Promise<string> {
    const dir = tempDir()
    writeConfig(dir, {
      'a.yaml': catchAllConfig(port, '/a', [up.origin]),
    })
    return dir
  }

  test('a listener port held by a plain socket stops the start with GH_ERR_LISTENER_BUSY and exit 1', async () => {
    const up = await startUpstream()
    cleanup.push(() => up.close())
    const port = await freePort()
    const squatter = net.createServer()
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r))
    cleanup.push(() => squatter.close())
    const gw = await startGateway(await config(port, up), { waitReady: false })
    const r = await gw.exited
    assert.equal(r.code, 1)
    assert.match(gw.output(), /GH_ERR_LISTENER_BUSY.*already in use/)
  })

  test('a second gateway on the ports of a running one exits 1 instead of sharing its traffic', async () => {
    const up = await startUpstream()
    cleanup.push(() => up.close())
    const port = await freePort()
    const dir = await config(port, up)
    const first: Gateway = await startGateway(dir)
    cleanup.push(() => first.stop())
    const second = await startGateway(dir, { waitReady: false })
    const r = await second.exited
    assert.equal(r.code, 1)
    assert.match(second.output(), /GH_ERR_LISTENER_BUSY/)
    const res = await fetch(`http://127.0.0.1:${port}/a/x`)
    assert.equal(res.status, 200, 'the first gateway still serves')
  })
})
