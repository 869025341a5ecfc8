/** Directory reading and error collection across files and stages. */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { loadConfigDir } from '../../src/config/load.js'
import { apiHead, errorsOf, Fixtures, serviceHead, snapshotOf } from './helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

describe('loading a config directory', () => {
  test('errors of every stage in several files are all reported, in file and line order', async () => {
    const dir = fx.dir({
      'b-api.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      service: nope', '      routes: [{}]',
        '---', ...apiHead('other'), '  address: http://0.0.0.0:8082', '  services:', '    v1:', '      address: http://10.0.0.5:8080', '      routes: [{ rules: [{ path: "(" }] }]'],
      'a-broken.yml': ['kind: [', ''],
      'c-svc.yaml': [...serviceHead('db'), '  endpoints: [http://10.0.0.5:8080]', '  retries: -1', '---', ...serviceHead('db'), '  endpoints: [http://10.0.0.6:8080]'],
    })
    const j = (f: string) => path.join(dir, f)
    assert.deepEqual(await errorsOf(dir), [
      `${j('a-broken.yml')}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      `${j('b-api.yaml')}:8:16: spec.services.v1.service: Service "nope" does not exist`,
      `${j('b-api.yaml')}:19:34: spec.services.v1.routes[0].rules[0].path: invalid regular expression: Unterminated group`,
      `${j('c-svc.yaml')}:6:12: spec.retries: must be >= 0`,
      `${j('c-svc.yaml')}:10:19: metadata.name: duplicate Service name "db" (first defined at ${j('c-svc.yaml')}:3:19)`,
    ])
  })

  test('several schema errors in one document are all reported', async () => {
    const dir = fx.dir({ 'a.yaml': [...serviceHead(), '  endpoints: []', '  retries: x', '  timeouts: { connectMs: 0, readMs: 5 }'] })
    const f = path.join(dir, 'a.yaml')
    assert.deepEqual(await errorsOf(dir), [
      `${f}:5:14: spec.endpoints: must not be empty`,
      `${f}:6:12: spec.retries: must be an integer, got a string`,
      `${f}:7:26: spec.timeouts.connectMs: must be >= 1`,
      `${f}:7:29: spec.timeouts.readMs: unknown field`,
    ])
  })

  test('an empty directory is valid, has no listeners and carries the defaults', async () => {
    const r = await loadConfigDir(fx.dir())
    assert.equal(r.ok, true)
    if (!r.ok) return
    assert.deepEqual(r.snapshot.listeners, [])
    assert.deepEqual(r.snapshot.services, {})
    assert.deepEqual(r.files, [])
    assert.deepEqual(r.secrets, [])
    assert.equal(r.snapshot.host.workers, 'auto')
  })

  test('only *.yaml and *.yml files are read, sorted, skipping dotfiles and subdirectories', async () => {
    const svc = (n: string) => [...serviceHead(n), '  endpoints: [http://10.0.0.5:8080]']
    const dir = fx.dir({
      'b.yml': svc('b'), 'a.yaml': svc('a'), 'notes.txt': 'not: [yaml', '.hidden.yaml': 'kind: [',
      'a.yaml.bak': 'kind: [', 'sub/c.yaml': 'kind: [',
    })
    const r = await loadConfigDir(dir)
    assert.equal(r.ok, true)
    if (r.ok) assert.deepEqual(r.files, [path.join(dir, 'a.yaml'), path.join(dir, 'b.yml')])
  })

  test('several documents per file are read, and empty documents are ignored', async () => {
    const dir = fx.dir({
      'a.yaml': ['# leading comment', '---', ...apiHead(), '  address: http://0.0.0.0:8081', '  services: { v1: { service: backend, routes: [{}] } }',
        '---', ...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '---', '# nothing here', '---'],
    })
    const snap = await snapshotOf(dir)
    assert.deepEqual(Object.keys(snap.services), ['backend'])
    assert.equal(snap.listeners[0]?.apis[0]?.name, 'orders')
  })

  test('a path that is not a directory is an error', async () => {
    const file = fx.file('plain.yaml', 'a: 1\n')
    assert.deepEqual(await errorsOf(file), [`${file}: cannot read config directory (ENOTDIR)`])
  })

  test('a missing certificate file is reported at the tls field', async () => {
    const dir = fx.dir({
      'a.yaml': [...apiHead(), '  address: https://0.0.0.0:8443', '  tls: { certFile: cert.pem, keyFile: missing.pem }',
        '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
      'cert.pem': 'x',
    })
    assert.deepEqual(await errorsOf(dir), [`${path.join(dir, 'a.yaml')}:6:39: spec.tls.keyFile: cannot read missing.pem (ENOENT)`])
  })

  test('an ApiInstance on the default admin port is an error when no Configuration moves the admin server', async () => {
    const dir = fx.dir({ 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:9901', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'] })
    assert.deepEqual(await errorsOf(dir), [
      `${path.join(dir, 'a.yaml')}:5:12: spec.address: port 9901 is the admin port (http://127.0.0.1:9901); choose another port or set admin.address in a Configuration`,
    ])
  })
})

describe('hostile YAML', () => {
  test('an alias bomb is rejected instead of expanded', async () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i)
      const cur = String.fromCharCode(98 + i)
      lines.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(', ')}]`)
    }
    const dir = fx.dir({ 'a.yaml': lines })
    const [first, ...rest] = await errorsOf(dir)
    assert.equal(rest.length, 0)
    assert.equal(first, `${path.join(dir, 'a.yaml')}:1:1: Excessive alias count indicates a resource exhaustion attack`)
  })
})
