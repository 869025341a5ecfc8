import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Agent, request } from 'undici'
import { freePort, hostYaml, serviceYaml, startGateway, startUpstream, tempDir, writeConfig, type Gateway, type Upstream } from '../helpers/gateway.js'

describe('inbound TLS through the uWS SSL app', () => {
  let gw: Gateway
  let up: Upstream
  let port: number
  let ca: string

  before(async () => {
    up = await startUpstream()
    port = await freePort()
    const dir = tempDir()
    const cert = path.join(dir, 'cert.pem')
    const key = path.join(dir, 'key.pem')
    // A fresh self-signed certificate for 127.0.0.1, made by the test.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
    ca = fs.readFileSync(cert, 'utf8')
    writeConfig(dir, {
      'a.yaml': `apiVersion: gatehouse/v1
kind: ApiInstance
metadata: { name: secure }
spec:
  address: https://127.0.0.1:${port}/s
  tls: { certFile: ${cert}, keyFile: ${key} }
  services:
    all:
      service: s
      routes: [{ rules: [{ path: (/.*) }] }]
---
` + serviceYaml('s', [up.origin]) + '---\n' + hostYaml(),
    })
    gw = await startGateway(dir)
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('an HTTPS request verified against the certificate is proxied and marked X-Forwarded-Proto: https', async () => {
    const agent = new Agent({ connect: { ca } })
    const r = await request(`https://127.0.0.1:${port}/s/hello?x=1`, { dispatcher: agent })
    const body = JSON.parse(await r.body.text()) as { url: string; headers: Record<string, string> }
    await agent.close()
    assert.equal(r.statusCode, 200)
    assert.equal(body.url, '/hello?x=1')
    assert.equal(body.headers['x-forwarded-proto'], 'https')
  })

  test('a plain HTTP request to the TLS port gets no HTTP answer', async () => {
    const r = await request(`http://127.0.0.1:${port}/s/hello`, { headersTimeout: 3000 }).then((x) => x.statusCode, (e: Error) => e)
    assert.ok(r instanceof Error, `expected a failure, got status ${String(r)}`)
  })
})
