import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { catchAllConfig, gatewayFixture, waitFor } from '../helpers/gateway.js'

/*
 * overload.maxConnections against the real gateway (1 worker, so its listening socket is the
 * only one) and real sockets: past the cap the worker stops accepting, so a new connection
 * is refused at once (ECONNREFUSED) while the admin API keeps answering; once clients leave,
 * it accepts and serves again.
 */
const CAP = 20

/** Resolves 'refused' or 'accepted' for one connection attempt (an accepted one is closed). */
function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve('accepted') })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'accepted'))
  })
}

describe('connection cap', () => {
  const f = gatewayFixture((port, origin) => ({ 'gw.yaml': catchAllConfig(port, '/', [origin], { host: `  overload: { maxConnections: ${CAP} }\n`, workers: 1 }) }))

  test('past maxConnections new connections are refused at once, and accepted again once clients leave', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${f.port}/before`)).status, 200)
    // Idle clients (uWS closes them only after ~10 s): more than the cap.
    const idle: net.Socket[] = []
    for (let i = 0; i < CAP + 10; i++) {
      const s = net.connect(f.port, '127.0.0.1')
      s.on('error', () => {})
      await new Promise((r) => s.once('connect', r))
      idle.push(s)
    }
    await waitFor('a new connection to be refused', async () => (await tryConnect(f.port)) === 'refused', 5000, 100)
    assert.match(f.gw.output(), /GH_WRN_CONNECTIONS_CAPPED/)
    assert.equal((await fetch(`${f.gw.admin}/ready`)).status, 200, 'the admin API answers meanwhile')
    // The same count is the open-connections gauge (its estimate may include a descriptor or two more).
    const open = Number(/^gatehouse_connections_open (\d+)$/m.exec(await (await fetch(`${f.gw.admin}/metrics`)).text())?.[1])
    assert.ok(open >= CAP + 10 && open <= CAP + 15, `gatehouse_connections_open ${open} with ${CAP + 10} clients connected`)
    // The clients already connected are still served.
    idle[0]!.write('GET /held HTTP/1.1\r\nHost: x\r\n\r\n')
    const reply = await new Promise<string>((r) => idle[0]!.once('data', (d: Buffer) => r(d.toString('latin1'))))
    assert.match(reply, /^HTTP\/1\.1 200 /)

    for (const s of idle) s.destroy()
    await waitFor('connections to be accepted again', async () => (await tryConnect(f.port)) === 'accepted', 5000, 100)
    const r = await fetch(`http://127.0.0.1:${f.port}/after`)
    assert.equal(r.status, 200)
    await waitFor('the uncapped log line', () => /GH_WRN_CONNECTIONS_UNCAPPED/.test(f.gw.output()))
    const text = await (await fetch(`${f.gw.admin}/metrics`)).text()
    assert.match(text, /^gatehouse_connection_cap_reached_total 1$/m)
  })
})
