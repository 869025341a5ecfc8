/**
 * The jwt-validation and oauth2-introspection schemas through the real config loader:
 * each bad config gives the exact positioned error. Fixture line N is array index N-1.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { apiHead, errorsOf, Fixtures, snapshotOf } from '../../../config/helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

/** An API whose only policy is `name` with these config lines; `config:` is line 12, the first line 13. */
function api(name: string, config: string[]): string[] {
  return [...apiHead(), '  address: http://127.0.0.1:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080',
    '      routes: [{ rules: [{ path: (/.*) }] }]', '  policies:', `    - policyRef: { name: ${name} }`,
    '      config:', ...config.map((l) => `        ${l}`)]
}

async function errors(name: string, config: string[], env: Record<string, string> = {}): Promise<string[]> {
  const dir = fx.dir({ 'a.yaml': api(name, config) })
  return (await errorsOf(dir, env)).map((e) => e.replace(dir, 'F'))
}

describe('jwt-validation config', () => {
  test('no key source, or keys that do not fit the algorithms, are reported', async () => {
    assert.deepEqual(await errors('jwt-validation', ['algorithms: [RS256]']), [
      'F/a.yaml:13:9: spec.policies[0].config: needs a key source: jwksUrl, publicKeys or secret',
      'F/a.yaml:13:9: spec.policies[0].config: RS/PS/ES/EdDSA algorithms need jwksUrl or publicKeys',
    ])
    assert.deepEqual(await errors('jwt-validation', ['algorithms: [RS256, HS512]', 'jwksUrl: https://idp/jwks']), [
      'F/a.yaml:13:9: spec.policies[0].config: HS256/HS384/HS512 need a secret',
    ])
  })

  test('"none", a short secret, a bad URL and a mixed token source are rejected', async () => {
    assert.deepEqual(await errors('jwt-validation', ['algorithms: [none]', 'secret: short', 'jwksUrl: ftp://x', 'tokenSource: { header: x, cookie: y }']), [
      'F/a.yaml:13:22: spec.policies[0].config.algorithms[0]: must be one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512',
      'F/a.yaml:14:17: spec.policies[0].config.secret: must not have fewer than 32 characters',
      'F/a.yaml:15:18: spec.policies[0].config.jwksUrl: must be an http:// or https:// URL',
      'F/a.yaml:16:22: spec.policies[0].config.tokenSource: must be one of { header, scheme? }, { query } or { cookie }',
    ])
  })

  test('a valid config gets its defaults and order 30, with the secret taken from the environment', async () => {
    const dir = fx.dir({ 'a.yaml': api('jwt-validation', ['algorithms: [HS256]', 'secret: "${env:JWT_SECRET}"']) })
    const p = (await snapshotOf(dir, { JWT_SECRET: 'x'.repeat(32) })).listeners[0]!.apis[0]!.policies[0]!
    assert.equal(p.order, 30)
    assert.deepEqual(p.config, {
      algorithms: ['HS256'], secret: 'x'.repeat(32), secretEncoding: 'utf8', cacheTtlMs: 600_000, minRefetchIntervalMs: 30_000,
      timeoutMs: 5000, clockSkewSeconds: 30, consumerClaim: 'sub', forwardToken: false, cacheSize: 10_000,
    })
  })
})

describe('oauth2-introspection config', () => {
  test('missing credentials and a bad scope are reported', async () => {
    assert.deepEqual(await errors('oauth2-introspection', ['introspectionUrl: https://idp/introspect', 'requiredScopes: ["a b"]']), [
      'F/a.yaml:13:9: spec.policies[0].config: missing required field "clientId"',
      'F/a.yaml:13:9: spec.policies[0].config: missing required field "clientSecret"',
      'F/a.yaml:14:26: spec.policies[0].config.requiredScopes[0]: must match ^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$',
    ])
  })

  test('a valid config gets its defaults and order 30', async () => {
    const dir = fx.dir({ 'a.yaml': api('oauth2-introspection', ['introspectionUrl: https://idp/introspect', 'clientId: gw', 'clientSecret: s']) })
    const p = (await snapshotOf(dir)).listeners[0]!.apis[0]!.policies[0]!
    assert.equal(p.order, 30)
    assert.deepEqual(p.config, {
      introspectionUrl: 'https://idp/introspect', clientId: 'gw', clientSecret: 's', timeoutMs: 3000, tokenTypeHint: 'access_token',
      cacheTtlMs: 60_000, negativeCacheTtlMs: 5000, cacheSize: 10_000, forwardToken: false,
    })
  })
})
