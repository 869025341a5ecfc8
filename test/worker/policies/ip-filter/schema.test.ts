/**
 * The ip-filter schema through the real config loader: each bad config gives the exact
 * positioned error. Fixture line N is array index N-1.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { apiHead, errorsOf, Fixtures, snapshotOf } from '../../../config/helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

/** An API whose only policy has these config lines; `config:` is line 12, the first line 13. */
function api(config: string[]): string[] {
  return [...apiHead(), '  address: http://127.0.0.1:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080',
    '      routes: [{ rules: [{ path: (/.*) }] }]', '  policies:', '    - policyRef: { name: ip-filter }',
    '      config:', ...config.map((l) => `        ${l}`)]
}

async function errors(config: string[]): Promise<string[]> {
  const dir = fx.dir({ 'a.yaml': api(config) })
  return (await errorsOf(dir)).map((e) => e.replace(dir, 'F'))
}

describe('ip-filter config', () => {
  test('a config without allow or deny says it needs one', async () => {
    assert.deepEqual(await errors(['useForwardedFor: true']), ['F/a.yaml:13:9: spec.policies[0].config: needs allow, deny or both'])
  })

  test('bad addresses and prefixes are reported at each entry', async () => {
    assert.deepEqual(await errors(['allow: [10.0.0.0/33, "2001:db8::/129", 10.0.0, localhost]', 'deny: ["::1/64", 192.0.2.1]']), [
      'F/a.yaml:13:17: spec.policies[0].config.allow[0]: must be an IP address or CIDR',
      'F/a.yaml:13:30: spec.policies[0].config.allow[1]: must be an IP address or CIDR',
      'F/a.yaml:13:48: spec.policies[0].config.allow[2]: must be an IP address or CIDR',
      'F/a.yaml:13:56: spec.policies[0].config.allow[3]: must be an IP address or CIDR',
    ])
  })

  test('an empty list, a non-boolean and a misspelt field are reported', async () => {
    assert.deepEqual(await errors(['deny: []', 'useForwardedFor: yes please', 'alow: [10.0.0.0/8]']), [
      'F/a.yaml:13:15: spec.policies[0].config.deny: must not be empty',
      'F/a.yaml:14:26: spec.policies[0].config.useForwardedFor: must be true or false, got a string',
      'F/a.yaml:15:9: spec.policies[0].config.alow: unknown field (did you mean "allow"?)',
    ])
  })

  test('a valid config is accepted with useForwardedFor defaulted', async () => {
    const snap = await snapshotOf(fx.dir({ 'a.yaml': api(['allow: [10.0.0.0/8, "2001:db8::/32", "::ffff:192.0.2.0/120"]']) }))
    const p = snap.listeners[0]!.apis[0]!.policies[0]!
    assert.equal(p.order, 15)
    assert.deepEqual(p.config, { allow: ['10.0.0.0/8', '2001:db8::/32', '::ffff:192.0.2.0/120'], useForwardedFor: false })
  })
})
