import { writeFileSync } from 'node:fs'
import path from 'node:path'
/**
 * The http-basic-authentication schema through the real config loader: each bad config
 * gives the exact positioned error. Fixture line N is array index N-1.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { apiHead, errorsOf, Fixtures, snapshotOf } from '../../../config/helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

const BCRYPT = '$2y$10$wYHg1nOZn3P6H7zJpMaZieVJf0ZcQ3m9pZ3b3rGgYkQk6Q0Jm8zVa'

/** An API whose only policy has these config lines; `config:` is line 12, the first line 13. */
function api(config: string[]): string[] {
  return [...apiHead(), '  address: http://127.0.0.1:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080',
    '      routes: [{ rules: [{ path: (/.*) }] }]', '  policies:', '    - policyRef: { name: http-basic-authentication }',
    '      config:', ...config.map((l) => `        ${l}`)]
}

async function errors(config: string[]): Promise<string[]> {
  const dir = fx.dir({ 'a.yaml': api(config) })
  return (await errorsOf(dir)).map((e) => e.replace(dir, 'F'))
}

describe('http-basic-authentication config', () => {
  test('a config without users or htpasswdFile says it needs one', async () => {
    assert.deepEqual(await errors(['realm: x']), ['F/a.yaml:13:9: spec.policies[0].config: needs users, htpasswdFile or both'])
  })

  test('a plaintext password is refused with how to hash it', async () => {
    assert.deepEqual(await errors(['users: [{ username: alice, passwordHash: hunter2 }]']), [
      'F/a.yaml:13:50: spec.policies[0].config.users[0].passwordHash: must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. `htpasswd -nbB user pass`) or {SHA}base64(sha1); plaintext passwords are not accepted',
    ])
  })

  test('an Apache MD5 hash and a bcrypt cost out of range are refused', async () => {
    assert.deepEqual(await errors([
      'users:',
      '  - { username: a, passwordHash: "$apr1$abcdefgh$0123456789abcdefghijkl" }',
      `  - { username: b, passwordHash: "${BCRYPT.replace('$10$', '$03$')}" }`,
    ]), [
      'F/a.yaml:14:42: spec.policies[0].config.users[0].passwordHash: must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. `htpasswd -nbB user pass`) or {SHA}base64(sha1); plaintext passwords are not accepted',
      'F/a.yaml:15:42: spec.policies[0].config.users[1].passwordHash: must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. `htpasswd -nbB user pass`) or {SHA}base64(sha1); plaintext passwords are not accepted',
    ])
  })

  test('a user name with a colon, a relative htpasswdFile and a quoted realm are refused', async () => {
    assert.deepEqual(await errors([
      `users: [{ username: "a:b", passwordHash: "${BCRYPT}" }]`,
      'htpasswdFile: conf/htpasswd',
      'realm: say "hi"',
    ]), [
      'F/a.yaml:13:29: spec.policies[0].config.users[0].username: must be a non-empty user name without ":" or control characters',
      'F/a.yaml:14:23: spec.policies[0].config.htpasswdFile: must be an absolute path',
      'F/a.yaml:15:16: spec.policies[0].config.realm: must be a non-empty realm without quotes, backslashes or control characters',
    ])
  })

  test('a misspelt field is an error with a suggestion, and an empty users list is refused', async () => {
    assert.deepEqual(await errors(['users: []', 'forwardCredential: true']), [
      'F/a.yaml:13:16: spec.policies[0].config.users: must not be empty',
      'F/a.yaml:14:9: spec.policies[0].config.forwardCredential: unknown field (did you mean "forwardCredentials"?)',
    ])
  })

  test('a valid config is accepted with realm and forwardCredentials defaulted', async () => {
    const htpasswd = path.join(fx.dir({}), 'htpasswd')
    writeFileSync(htpasswd, `bob:${BCRYPT}\n`)
    const snap = await snapshotOf(fx.dir({ 'a.yaml': api([`users: [{ username: alice, passwordHash: "${BCRYPT}" }]`, `htpasswdFile: ${htpasswd}`]) }))
    const p = snap.listeners[0]!.apis[0]!.policies[0]!
    assert.equal(p.order, 20)
    assert.deepEqual(p.config, {
      users: [{ username: 'alice', passwordHash: BCRYPT }], htpasswdFile: htpasswd, realm: 'gatehouse', forwardCredentials: false,
    })
  })

  test('an htpasswdFile that cannot be read is a config error at its position', async () => {
    assert.deepEqual(await errors(['htpasswdFile: /nonexistent/gatehouse/htpasswd']), [
      'F/a.yaml:13:23: spec.policies[0].config.htpasswdFile: cannot read /nonexistent/gatehouse/htpasswd (ENOENT)',
    ])
  })
})
