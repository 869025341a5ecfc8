import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { apiYaml, freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

describe('a reload that a worker cannot apply is rolled back whole', () => {
  let gw: Gateway
  let u1: Upstream
  let u2: Upstream
  let port: number
  let busyPort: number
  let squatter: net.Server
  let dir: string

  before(async () => {
    u1 = await startUpstream((_req, res) => res.end('one'))
    u2 = await startUpstream((_req, res) => res.end('two'))
    port = await freePort()
    busyPort = await freePort()
    // A plain socket without SO_REUSEPORT: uWS cannot share this port.
    squatter = net.createServer()
    await new Promise<void>((r) => squatter.listen(busyPort, '127.0.0.1', r))
    dir = tempDir()
    writeConfig(dir, {
      'a.yaml': apiYaml('a', port, '/a', `    all:
      service: s1
      routes: [{ rules: [{ path: (/.*) }] }]
`) + '---\n' + serviceYaml('s1', [u1.origin]) + '---\n' + hostYaml(),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    squatter?.close()
    await Promise.all([u1?.close(), u2?.close()])
  })

  test('a new listener on a taken port fails the reload with 500 and the old routes and pools keep serving', async () => {
    const before = await (await fetch(`${gw.admin}/status`)).json() as { configVersion: string }
    // The new config drops s1 (its pool would be closed on success) and adds a listener on a taken port.
    writeConfig(dir, {
      'a.yaml': apiYaml('a', port, '/a', `    all:
      service: s2
      routes: [{ rules: [{ path: (/.*) }] }]
`) + '---\n' + apiYaml('b', busyPort, '/b', `    all:
      service: s2
      routes: [{ rules: [{ path: (/.*) }] }]
`) + '---\n' + serviceYaml('s2', [u2.origin]) + '---\n' + hostYaml(),
    })
    const r = await fetch(`${gw.admin}/reload`, { method: 'POST' })
    const body = await r.json() as { code: string; errors: string[] }
    assert.equal(r.status, 500)
    assert.equal(body.code, 'GH_ERR_RELOAD_FAILED')
    const after = await (await fetch(`${gw.admin}/status`)).json() as { configVersion: string }
    assert.equal(after.configVersion, before.configVersion)
    // Many fresh connections, so both workers answer: every one still reaches upstream one.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/a/x`, { headers: { connection: 'close' } })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'one')
    }
    const ready = await fetch(`${gw.admin}/ready`)
    assert.equal(ready.status, 200)
  })
})
