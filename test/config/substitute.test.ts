/** ${env:} / ${file:} substitution, the secrets list, and redaction. */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { formatConfigError, loadConfigDir, redact } from '../../src/config/load.js'
import { apiHead, errorsOf, Fixtures } from './helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

function hostConfig(lines: string[]): string[] {
  return ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', ...lines]
}

async function load(dir: string, env: Record<string, string>) {
  const r = await loadConfigDir(dir, { env })
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'))
  return r
}

describe('substitution', () => {
  test('an ${env:} reference is replaced as a whole value and inside a longer string', async () => {
    const dir = fx.dir({
      'host.yaml': hostConfig(['  admin: { token: "${env:ADMIN_TOKEN}" }', '  sharedStorage: { redis: { address: "${env:REDIS_HOST}:6379" } }']),
      'api.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services: { v1: { address: "http://${env:UPSTREAM}:8080", routes: [{}] } }'],
    })
    const r = await load(dir, { ADMIN_TOKEN: 'tok-123', REDIS_HOST: 'redis.internal', UPSTREAM: 'orders.internal' })
    assert.equal(r.snapshot.host.admin.token, 'tok-123')
    assert.equal(r.snapshot.services['orders.v1']?.endpoints[0]?.origin, 'http://orders.internal:8080')
    assert.deepEqual([...r.secrets].sort(), ['orders.internal', 'redis.internal', 'tok-123'])
  })

  test('a ${file:} reference reads the file with one trailing newline trimmed, relative to the directory', async () => {
    const abs = fx.file('token.txt', 'from-abs-file\n\n')
    const dir = fx.dir({
      'host.yaml': hostConfig([`  admin: { token: "\${file:${abs}}" }`, '  sharedStorage: { redis: { address: "r:6379", password: "${file:secrets/redis}" } }']),
      'secrets/redis': 'redis-pw\n',
    })
    const r = await load(dir, {})
    assert.equal(r.snapshot.host.admin.token, 'from-abs-file\n')
    assert.deepEqual([...r.secrets].sort(), ['from-abs-file\n', 'redis-pw'])
  })

  test('$${ escapes a literal ${ and is not a secret', async () => {
    const dir = fx.dir({ 'host.yaml': hostConfig(['  admin: { token: "a$${env:NOT_A_REF}b" }']) })
    const r = await load(dir, {})
    assert.equal(r.snapshot.host.admin.token, 'a${env:NOT_A_REF}b')
    assert.deepEqual(r.secrets, [])
  })

  test('a missing variable and an unreadable file in one document are both reported', async () => {
    const dir = fx.dir({ 'host.yaml': hostConfig(['  admin:', '    token: ${env:A}', '  logging:', '    directory: ${file:/nonexistent/x}']) })
    const f = path.join(dir, 'host.yaml')
    assert.deepEqual(await errorsOf(dir), [
      `${f}:6:12: spec.admin.token: environment variable A is not set`,
      `${f}:8:16: spec.logging.directory: cannot read file /nonexistent/x (ENOENT)`,
    ])
  })

  test('a secret quoted in an error message is redacted', async () => {
    const dir = fx.dir({ 'api.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services: { v1: { address: "${env:UPSTREAM}", routes: [{}] } }'] })
    const errs = await errorsOf(dir, { UPSTREAM: 'ftp://user:hunter2@host' })
    assert.deepEqual(errs, [
      `${path.join(dir, 'api.yaml')}:6:30: spec.services.v1.address: endpoint must be an http:// or https:// URL with a host, got "[REDACTED]"`,
    ])
  })
})

describe('redaction', () => {
  test('a substituted secret never appears in the redacted snapshot', async () => {
    const dir = fx.dir({
      'host.yaml': hostConfig(['  admin: { token: "${env:ADMIN_TOKEN}" }']),
      'api.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }',
        '  policies:', '    - policyRef: { name: header-injection }', '      config: { requestHeaders: { authorization: "Bearer ${env:API_KEY}" } }'],
    })
    const r = await load(dir, { ADMIN_TOKEN: 's3cr3t-admin', API_KEY: 'k3y-abc' })
    assert.ok(JSON.stringify(r.snapshot).includes('k3y-abc'))
    const dump = JSON.stringify(redact(r.snapshot, r.secrets))
    assert.ok(!dump.includes('s3cr3t-admin'))
    assert.ok(!dump.includes('k3y-abc'))
    assert.ok(dump.includes('"authorization":"Bearer [REDACTED]"'))
  })

  test('fields named password, token, passphrase or secret are blanked even when written inline', () => {
    const input = { a: { password: 'p', Token: 't', passphrase: 'x', secret: 's', other: 'keep' }, token: null, list: [{ secret: 1 }] }
    assert.deepEqual(redact(input, []), {
      a: { password: '[REDACTED]', Token: '[REDACTED]', passphrase: '[REDACTED]', secret: '[REDACTED]', other: 'keep' },
      token: null,
      list: [{ secret: '[REDACTED]' }],
    })
  })

  test('redaction deep-copies and replaces every occurrence, longest secret first', () => {
    const input = { url: 'redis://u:abcdef@h/abc', nested: ['abc', 7, true] }
    const out = redact(input, ['abc', 'abcdef', ''])
    assert.deepEqual(out, { url: 'redis://u:[REDACTED]@h/[REDACTED]', nested: ['[REDACTED]', 7, true] })
    assert.equal(input.url, 'redis://u:abcdef@h/abc')
  })
})
