/**
 * White-box: keys files, hashed lookup, header and query extraction and stripping,
 * calling the factory with a minimal Exchange-like object.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { HeaderList } from '../../../../src/worker/headers.js'
import { apiKey, findQueryKey } from '../../../../src/worker/policies/api-key/handler.js'
import { parseKeysFile } from '../../../../src/worker/policies/api-key/keys.js'
import type { ApiKeyConfig } from '../../../../src/worker/policies/api-key/schema.js'
import type { LocalResponse, RequestHandler } from '../../../../src/worker/policies/types.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-apikey-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const hex = (key: string) => createHash('sha256').update(key).digest('hex')
const KEYS = [{ name: 'billing', keyHash: `sha256:${hex('k-billing')}` }, { name: 'reports', keyHash: `sha256:${hex('k-reports').toUpperCase()}` }]

function handler(config: ApiKeyConfig): RequestHandler {
  const h = apiKey.create(config, { id: 't', api: 'a', services: { leases: null } }).request
  assert.ok(h !== null)
  return h
}

function run(h: RequestHandler, headers: HeaderList, query = ''): { r: LocalResponse | undefined; ex: Exchange } {
  const ex = { headers, query, consumer: null } as unknown as Exchange
  const r = h(ex)
  assert.ok(!(r instanceof Promise), 'api-key answers synchronously')
  return { r, ex }
}

function code(r: LocalResponse | undefined): string {
  assert.ok(r !== undefined, 'expected a rejection')
  assert.equal(r.status, 401)
  assert.deepEqual(r.headers, ['www-authenticate', 'ApiKey'])
  return (JSON.parse(r.body) as { code: string }).code
}

describe('keys files', () => {
  test('name:hex lines are read, with comments, blank lines, a sha256: prefix and uppercase hex', () => {
    const text = ['# consumers', '', `billing:${hex('a')}`, `reports: sha256:${hex('b').toUpperCase()}`, '   ', `billing:${hex('c')}`].join('\n')
    assert.deepEqual(parseKeysFile(text, '/k'), [
      { name: 'billing', digest: hex('a'), where: '/k:3' },
      { name: 'reports', digest: hex('b'), where: '/k:4' },
      { name: 'billing', digest: hex('c'), where: '/k:6' },
    ])
  })

  test('a plaintext key or a missing name is rejected with file:line, without echoing the key', () => {
    assert.throws(() => parseKeysFile(`ops:my-plaintext-key\n${hex('x')}\n`, '/k'), (err: Error) => {
      assert.equal(err.message, [
        'invalid keys file /k:',
        '  /k:1: key of "ops" must be the 64 hex digits of its SHA-256 (printf %s KEY | sha256sum); plaintext keys are not accepted',
        '  /k:2: expected "name:sha256hex"',
      ].join('\n'))
      assert.ok(!err.message.includes('my-plaintext-key'))
      return true
    })
  })

  test('the factory merges keysFile with inline keys and refuses an unreadable or bad file', () => {
    const file = path.join(dir, 'keys')
    writeFileSync(file, `ops:${hex('k-ops')}\n`)
    const h = handler({ keys: KEYS, keysFile: file })
    assert.equal(run(h, ['x-api-key', 'k-ops']).ex.consumer, 'ops')
    assert.equal(run(h, ['x-api-key', 'k-billing']).ex.consumer, 'billing')
    assert.throws(() => handler({ keysFile: path.join(dir, 'none') }), { message: `api-key: cannot read keysFile ${path.join(dir, 'none')} (ENOENT)` })
    const bad = path.join(dir, 'bad')
    writeFileSync(bad, 'ops:plain\n')
    assert.throws(() => handler({ keysFile: bad }), { message: new RegExp(`^api-key: invalid keys file ${bad}:\n  ${bad}:1: key of "ops"`) })
  })

  test('the same key listed twice is an error; two keys for one consumer are fine', () => {
    const file = path.join(dir, 'dup')
    writeFileSync(file, `other:${hex('k-billing')}\n`)
    assert.throws(() => handler({ keys: KEYS, keysFile: file }), { message: `api-key: the same key is listed twice (keys[0] and ${file}:1)` })
    const rotation = handler({ keys: [{ name: 'billing', keyHash: `sha256:${hex('old')}` }, { name: 'billing', keyHash: `sha256:${hex('new')}` }] })
    assert.equal(run(rotation, ['x-api-key', 'old']).ex.consumer, 'billing')
    assert.equal(run(rotation, ['x-api-key', 'new']).ex.consumer, 'billing')
  })
})

describe('a key in a header', () => {
  const h = handler({ keys: KEYS })

  test('a known key in x-api-key names the consumer and is removed before forwarding', () => {
    const { r, ex } = run(h, ['x-api-key', 'k-billing', 'accept', '*/*'])
    assert.equal(r, undefined)
    assert.equal(ex.consumer, 'billing')
    assert.deepEqual(ex.headers, ['accept', '*/*'])
    assert.equal(run(h, ['x-api-key', 'k-reports']).ex.consumer, 'reports', 'uppercase hex in config matches')
  })

  test('forwardKey keeps the header', () => {
    const { ex } = run(handler({ keys: KEYS, forwardKey: true }), ['x-api-key', 'k-billing'])
    assert.deepEqual(ex.headers, ['x-api-key', 'k-billing'])
  })

  test('a configured header name matches case-insensitively', () => {
    const custom = handler({ keys: KEYS, name: 'X-Gateway-Key' })
    assert.equal(run(custom, ['x-gateway-key', 'k-billing']).ex.consumer, 'billing')
    assert.equal(code(run(custom, ['x-api-key', 'k-billing']).r), 'GH_ERR_AUTH_MISSING')
  })

  test('no key or an empty key is GH_ERR_AUTH_MISSING, an unknown or doubled key GH_ERR_AUTH_INVALID', () => {
    assert.equal(code(run(h, []).r), 'GH_ERR_AUTH_MISSING')
    assert.equal(code(run(h, ['x-api-key', '  ']).r), 'GH_ERR_AUTH_MISSING')
    const unknown = run(h, ['x-api-key', 'k-billinG'])
    assert.equal(code(unknown.r), 'GH_ERR_AUTH_INVALID')
    assert.equal(unknown.ex.consumer, null)
    assert.equal(code(run(h, ['x-api-key', 'k-billing', 'x-api-key', 'k-reports']).r), 'GH_ERR_AUTH_INVALID')
  })

  test('the missing-key problem says where the key is expected', () => {
    const r = run(h, []).r!
    assert.equal((JSON.parse(r.body) as { detail: string }).detail, 'API key required in header x-api-key')
  })
})

describe('a key in the query string', () => {
  const h = handler({ keys: KEYS, in: 'query' })

  test('api_key is the default parameter; it is removed and the other parameters pass byte for byte', () => {
    const { r, ex } = run(h, [], 'a=1&api_key=k-billing&b=%2Fx+y&c')
    assert.equal(r, undefined)
    assert.equal(ex.consumer, 'billing')
    assert.equal(ex.query, 'a=1&b=%2Fx+y&c')
    assert.equal(run(h, [], 'api_key=k-billing').ex.query, '')
  })

  test('the key value and parameter name are percent-decoded', () => {
    const key = 'k+ey/=1'
    const enc = handler({ keys: [{ name: 'enc', keyHash: `sha256:${hex(key)}` }], in: 'query', name: 'key' })
    assert.equal(run(enc, [], `k%65y=${encodeURIComponent(key)}`).ex.consumer, 'enc')
  })

  test('forwardKey leaves the query string alone', () => {
    const { ex } = run(handler({ keys: KEYS, in: 'query', forwardKey: true }), [], 'api_key=k-billing&x=1')
    assert.equal(ex.consumer, 'billing')
    assert.equal(ex.query, 'api_key=k-billing&x=1')
  })

  test('missing, malformed, unknown and repeated keys are refused', () => {
    assert.equal(code(run(h, [], '').r), 'GH_ERR_AUTH_MISSING')
    assert.equal(code(run(h, [], 'apikey=k-billing').r), 'GH_ERR_AUTH_MISSING')
    assert.equal(code(run(h, [], 'api_key=%zz').r), 'GH_ERR_AUTH_MISSING')
    assert.equal(code(run(h, [], 'api_key').r), 'GH_ERR_AUTH_MISSING')
    assert.equal(code(run(h, [], 'api_key=nope').r), 'GH_ERR_AUTH_INVALID')
    assert.equal(code(run(h, [], 'api_key=k-billing&api_key=k-reports').r), 'GH_ERR_AUTH_INVALID')
    assert.equal(code(run(h, ['x-api-key', 'k-billing'], '').r), 'GH_ERR_AUTH_MISSING', 'a header does not count in query mode')
  })

  test('findQueryKey reports count, key and the rest', () => {
    assert.deepEqual(findQueryKey('x=1&k=a&&y', 'k'), { key: 'a', count: 1, rest: 'x=1&&y', malformed: false })
    assert.deepEqual(findQueryKey('x=1', 'k'), { key: null, count: 0, rest: 'x=1', malformed: false })
  })
})
