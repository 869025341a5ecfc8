import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  ROOT, apiYaml, freePort, hostYaml, runCli, serviceYaml, startGateway, startUpstream, stopAndCheck, tempDir, writeConfig,
  type Gateway, type Upstream,
} from '../helpers/gateway.js'

const COMMANDS = ['start', 'validate', 'reload', 'status', 'version'] as const

describe('the gatehouse command line', () => {
  let up: Upstream
  let gw: Gateway
  let good: string
  let bad: string

  before(async () => {
    up = await startUpstream()
    const port = await freePort()
    good = tempDir()
    writeConfig(good, {
      'api.yaml': apiYaml('cli', port, '/c', `    main:
      service: echo
      routes: [{ rules: [{ path: (/.*) }] }]
`),
      'svc.yaml': serviceYaml('echo', [up.origin]),
      'host.yaml': hostYaml(),
    })
    bad = tempDir()
    writeConfig(bad, {
      'api.yaml': apiYaml('cli', port, '/c', `    main:
      service: echo
      routes: [{ rules: [{ path: "/v1([" }] }]
`),
      'svc.yaml': serviceYaml('echo', [up.origin], '  loadBalancing: fastest\n'),
      'host.yaml': hostYaml(),
    })
    gw = await startGateway(good)
  })

  after(async () => {
    const r = await stopAndCheck(gw)
    assert.equal(r?.code, 0)
    await up?.close()
  })

  test('validate exits 0 on a valid directory and says what it holds', async () => {
    const r = await runCli(['validate', good])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /: valid \(version [0-9a-f]{16}; 1 listeners, 1 APIs, 1 services\)/)
  })

  test('validate exits 1 on an invalid directory and prints file:line:col: path: message lines', async () => {
    const r = await runCli(['validate', bad])
    assert.equal(r.code, 1)
    const lines = r.stderr.trim().split('\n')
    const errors = lines.filter((l) => /^\S+\.yaml:\d+:\d+: \S+: .+$/.test(l))
    assert.ok(errors.length >= 2, r.stderr)
    assert.ok(errors.some((l) => l.startsWith(path.join(bad, 'api.yaml') + ':')), r.stderr)
    assert.ok(errors.some((l) => l.startsWith(path.join(bad, 'svc.yaml') + ':')), r.stderr)
    assert.match(lines.at(-1)!, /: \d+ error\(s\)$/)
  })

  test('validate exits 1 for a directory that does not exist', async () => {
    const r = await runCli(['validate', path.join(good, 'missing')])
    assert.equal(r.code, 1)
    assert.ok(r.stderr.length > 0)
  })

  test('version prints the package version and the Node.js runtime', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
    const r = await runCli(['version'])
    assert.equal(r.code, 0)
    assert.equal(r.stdout, `gatehouse ${pkg.version} (node ${process.version})\n`)
  })

  test('--help works for the tool and for each command', async () => {
    const main = await runCli(['--help'])
    assert.equal(main.code, 0)
    for (const c of COMMANDS) assert.match(main.stdout, new RegExp(`^  ${c} `, 'm'))
    const results = await Promise.all(COMMANDS.map((c) => runCli([c, '--help'])))
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, `${COMMANDS[i]} --help`)
      assert.match(r.stdout, new RegExp(`^Usage: gatehouse ${COMMANDS[i]}`))
    }
  })

  test('an unknown command or option exits 1 with usage, not a stack trace', async () => {
    const none = await runCli([])
    assert.equal(none.code, 1)
    assert.match(none.stdout, /^Usage: gatehouse <command>/)
    const unknown = await runCli(['frobnicate'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /unknown command 'frobnicate'/)
    const opt = await runCli(['validate', '--bogus', good])
    assert.equal(opt.code, 1)
    assert.match(opt.stderr, /^gatehouse validate: Unknown option '--bogus'/)
    assert.doesNotMatch(opt.stderr, /\n\s+at /)
    const port = await runCli(['start', '--config', good, '--admin-port', 'x'])
    assert.equal(port.code, 1)
    assert.match(port.stderr, /--admin-port must be a port number/)
  })

  test('status prints the running gateway\'s workers and config version', async () => {
    const r = await runCli(['status', '--admin', gw.admin])
    assert.equal(r.code, 0, r.stderr)
    const s = JSON.parse(r.stdout) as { pid: number; configVersion: string; workers: Array<{ pid: number; version: string }> }
    assert.equal(s.pid, gw.proc.pid)
    assert.equal(s.workers.length, 2)
    for (const w of s.workers) assert.equal(w.version, s.configVersion)
  })

  test('status and reload exit 2 when no gateway answers', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`
    for (const cmd of ['status', 'reload']) {
      const r = await runCli([cmd, '--admin', nobody])
      assert.equal(r.code, 2)
      assert.match(r.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+/)
    }
  })

  test('reload reports an unchanged config and exits 0', async () => {
    const r = await runCli(['reload', '--admin', gw.admin])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^unchanged: still serving [0-9a-f]{16}\n$/)
  })
})
