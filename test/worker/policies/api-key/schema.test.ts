/**
 * The api-key schema through the real config loader: each bad config gives the exact
 * positioned error. Fixture line N is array index N-1.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { apiHead, errorsOf, Fixtures, snapshotOf } from '../../../config/helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

const HASH = 'sha256:' + 'ab'.repeat(32)

/** An API whose only policy has these config lines; `config:` is line 12, the first line 13. */
function api(config: string[]): string[] {
  return [...apiHead(), '  address: http://127.0.0.1:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080',
    '      routes: [{ rules: [{ path: (/.*) }] }]', '  policies:', '    - policyRef: { name: api-key }',
    '      config:', ...config.map((l) => `        ${l}`)]
}

async function errors(config: string[]): Promise<string[]> {
  const dir = fx.dir({ 'a.yaml': api(config) })
  return (await errorsOf(dir)).map((e) => e.replace(dir, 'F'))
}

describe('api-key config', () => {
  test('a config without keys or keysFile says it needs one', async () => {
    assert.deepEqual(await errors(['in: header']), ['F/a.yaml:13:9: spec.policies[0].config: needs keys, keysFile or both'])
  })

  test('a plaintext key is refused with how to hash it', async () => {
    assert.deepEqual(await errors(['keys: [{ name: billing, keyHash: my-secret-key }]']), [
      'F/a.yaml:13:42: spec.policies[0].config.keys[0].keyHash: must be "sha256:" and the 64 hex digits of the key\'s SHA-256 (`printf %s KEY | sha256sum`); plaintext keys are not accepted',
    ])
  })

  test('an unknown location, a bad parameter name and a relative keysFile are refused', async () => {
    assert.deepEqual(await errors([`keys: [{ name: billing, keyHash: "${HASH}" }]`, 'in: cookie', 'name: "x api key"', 'keysFile: keys.txt']), [
      'F/a.yaml:14:13: spec.policies[0].config.in: must be one of: header, query',
      'F/a.yaml:15:15: spec.policies[0].config.name: must be a header or parameter name (letters, digits and !#$%&\'*+.^_`|~-)',
      'F/a.yaml:16:19: spec.policies[0].config.keysFile: must be an absolute path',
    ])
  })

  test('a key without a name and a misspelt field are reported', async () => {
    assert.deepEqual(await errors([`keys: [{ keyHash: "${HASH}" }]`, 'fowardKey: true']), [
      'F/a.yaml:13:16: spec.policies[0].config.keys[0]: missing required field "name"',
      'F/a.yaml:14:9: spec.policies[0].config.fowardKey: unknown field (did you mean "forwardKey"?)',
    ])
  })

  test('a valid config is accepted with in and forwardKey defaulted', async () => {
    const snap = await snapshotOf(fx.dir({ 'a.yaml': api([`keys: [{ name: billing, keyHash: "${HASH}" }]`]) }))
    const p = snap.listeners[0]!.apis[0]!.policies[0]!
    assert.equal(p.order, 25)
    assert.deepEqual(p.config, { keys: [{ name: 'billing', keyHash: HASH }], in: 'header', forwardKey: false })
  })
})
