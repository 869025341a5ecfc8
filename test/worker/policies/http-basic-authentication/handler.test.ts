/**
 * White-box: htpasswd parsing, {SHA} and bcrypt verification, header parsing and the
 * verification cache, calling the factory with a minimal Exchange-like object.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import bcrypt from 'bcryptjs'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { HeaderList } from '../../../../src/worker/headers.js'
import { httpBasicAuthentication, parseBasic } from '../../../../src/worker/policies/http-basic-authentication/handler.js'
import { parseHash, parseHtpasswd, verifyHash } from '../../../../src/worker/policies/http-basic-authentication/credentials.js'
import { LruSet } from '../../../../src/worker/policies/http-basic-authentication/lru.js'
import type { HttpBasicAuthenticationConfig } from '../../../../src/worker/policies/http-basic-authentication/schema.js'
import type { LocalResponse, RequestHandler } from '../../../../src/worker/policies/types.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-basic-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const sha = (pw: string) => `{SHA}${createHash('sha1').update(pw).digest('base64')}`
const bc = (pw: string, cost = 4) => bcrypt.hashSync(pw, cost)
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`, 'utf8').toString('base64')}`

function exchange(headers: HeaderList): Exchange {
  return { headers, consumer: null } as unknown as Exchange
}

function handler(config: HttpBasicAuthenticationConfig): RequestHandler {
  const h = httpBasicAuthentication.create(config, { id: 't', api: 'a', services: { leases: null } }).request
  assert.ok(h !== null)
  return h
}

function run(h: RequestHandler, headers: HeaderList): { r: LocalResponse | undefined; ex: Exchange } {
  const ex = exchange(headers)
  const r = h(ex)
  assert.ok(!(r instanceof Promise), 'basic auth answers synchronously')
  return { r, ex }
}

function body(r: LocalResponse | undefined): { code: string; status: number } {
  assert.ok(r !== undefined, 'expected a rejection')
  return JSON.parse(r.body) as { code: string; status: number }
}

describe('htpasswd files', () => {
  test('comments and blank lines are skipped and bcrypt and {SHA} lines are read', () => {
    const text = ['# team accounts', '', 'alice:' + bc('a'), '  # indented comment', 'bob:' + sha('b'), ''].join('\n')
    const users = parseHtpasswd(text, '/etc/htpasswd')
    assert.deepEqual(users.map((u) => [u.username, u.hash.kind, u.where]), [
      ['alice', 'bcrypt', '/etc/htpasswd:3'],
      ['bob', 'sha', '/etc/htpasswd:5'],
    ])
  })

  test('CRLF line endings are accepted', () => {
    const users = parseHtpasswd(`alice:${sha('a')}\r\nbob:${sha('b')}\r\n`, 'f')
    assert.deepEqual(users.map((u) => u.username), ['alice', 'bob'])
  })

  test('unsupported formats are rejected with file:line for every bad line, without echoing the hash', () => {
    const text = [
      'md5:$apr1$abcdefgh$0123456789abcdefghijkl',
      'plain:hunter2',
      'sha512:$6$salt$hash',
      'ok:' + sha('x'),
      'nocolon',
      'shortsha:{SHA}abc=',
    ].join('\n')
    assert.throws(() => parseHtpasswd(text, '/etc/htpasswd'), (err: Error) => {
      assert.equal(err.message, [
        'invalid htpasswd file /etc/htpasswd:',
        '  /etc/htpasswd:1: user "md5": Apache MD5 ($apr1$) hashes are not supported; re-create it with `htpasswd -B` (bcrypt)',
        '  /etc/htpasswd:2: user "plain": not a bcrypt ($2a$/$2b$/$2y$) or {SHA} hash (plaintext and crypt(3) passwords are not accepted; use `htpasswd -B`)',
        '  /etc/htpasswd:3: user "sha512": unsupported hash scheme "$6$"; use bcrypt ($2a$/$2b$/$2y$, `htpasswd -B`) or {SHA}',
        '  /etc/htpasswd:5: expected "user:hash"',
        '  /etc/htpasswd:6: user "shortsha": {SHA} hash must be the base64 of a 20-byte SHA-1 digest (28 characters)',
      ].join('\n'))
      assert.ok(!err.message.includes('hunter2'))
      return true
    })
  })

  test('the factory reads htpasswdFile and refuses an unreadable one with the path and reason', () => {
    const file = path.join(dir, 'htpasswd')
    writeFileSync(file, `carol:${sha('c')}\n`)
    const h = handler({ htpasswdFile: file })
    assert.equal(run(h, ['authorization', basic('carol', 'c')]).r, undefined)
    assert.throws(() => handler({ htpasswdFile: path.join(dir, 'nope') }),
      { message: `http-basic-authentication: cannot read htpasswdFile ${path.join(dir, 'nope')} (ENOENT)` })
  })

  test('the factory refuses a bad htpasswd file with the policy name and the bad line', () => {
    const file = path.join(dir, 'bad-htpasswd')
    writeFileSync(file, 'dave:secret\n')
    assert.throws(() => handler({ htpasswdFile: file }), { message: new RegExp(`^http-basic-authentication: invalid htpasswd file ${file}:\n  ${file}:1: user "dave": not a bcrypt`) })
  })

  test('a user defined both inline and in the file is an error naming both places', () => {
    const file = path.join(dir, 'dup')
    writeFileSync(file, `# x\nerin:${sha('e')}\n`)
    assert.throws(() => handler({ users: [{ username: 'erin', passwordHash: sha('f') }], htpasswdFile: file }),
      { message: `http-basic-authentication: user "erin" is defined twice (users[0] and ${file}:2)` })
  })
})

describe('password verification', () => {
  test('{SHA} hashes verify the right password only', () => {
    const h = parseHash(sha('s3cret'))
    assert.ok(!('error' in h))
    assert.equal(verifyHash(h, 's3cret'), true)
    assert.equal(verifyHash(h, 's3cret '), false)
    assert.equal(verifyHash(h, ''), false)
  })

  test('bcrypt $2a$, $2b$ and $2y$ hashes all verify', () => {
    const b = bc('pässwörd')
    for (const variant of ['$2a$', '$2b$', '$2y$']) {
      const h = parseHash(variant + b.slice(4))
      assert.ok(!('error' in h), variant)
      assert.equal(verifyHash(h, 'pässwörd'), true, variant)
      assert.equal(verifyHash(h, 'passwort'), false, variant)
    }
  })
})

describe('the Authorization header', () => {
  const h = handler({ realm: 'orders', users: [{ username: 'alice', passwordHash: bc('wonderland') }, { username: 'bob', passwordHash: sha('builder') }] })

  test('right credentials pass, name the consumer and are removed before forwarding', () => {
    const { r, ex } = run(h, ['accept', '*/*', 'authorization', basic('alice', 'wonderland')])
    assert.equal(r, undefined)
    assert.equal(ex.consumer, 'alice')
    assert.deepEqual(ex.headers, ['accept', '*/*'])
    assert.equal(run(h, ['authorization', basic('bob', 'builder')]).ex.consumer, 'bob')
  })

  test('forwardCredentials keeps the Authorization header', () => {
    const keep = handler({ forwardCredentials: true, users: [{ username: 'bob', passwordHash: sha('builder') }] })
    const { r, ex } = run(keep, ['authorization', basic('bob', 'builder')])
    assert.equal(r, undefined)
    assert.deepEqual(ex.headers, ['authorization', basic('bob', 'builder')])
  })

  test('a wrong password or an unknown user is 401 GH_ERR_AUTH_INVALID with the realm challenge', () => {
    for (const [u, p] of [['alice', 'wrong'], ['bob', 'Builder'], ['mallory', 'wonderland']] as const) {
      const { r, ex } = run(h, ['authorization', basic(u, p)])
      assert.equal(r?.status, 401)
      assert.equal(body(r).code, 'GH_ERR_AUTH_INVALID')
      assert.deepEqual(r?.headers, ['www-authenticate', 'Basic realm="orders", charset="UTF-8"'])
      assert.equal(r?.contentType, 'application/problem+json')
      assert.equal(ex.consumer, null)
      assert.equal(ex.headers.length, 2, 'a rejected request keeps its headers (it goes nowhere)')
    }
  })

  test('no header, another scheme or garbled Basic credentials are 401 GH_ERR_AUTH_MISSING', () => {
    const cases: HeaderList[] = [
      [],
      ['authorization', 'Bearer abc.def.ghi'],
      ['authorization', 'Basic'],
      ['authorization', 'Basic !!!notbase64'],
      ['authorization', `Basic ${Buffer.from('no-colon').toString('base64')}`],
      ['authorization', `Basic ${Buffer.from(':empty-user').toString('base64')}`],
      ['authorization', `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`],
    ]
    for (const headers of cases) {
      const { r } = run(h, headers)
      assert.equal(r?.status, 401, JSON.stringify(headers))
      assert.equal(body(r).code, 'GH_ERR_AUTH_MISSING')
      assert.deepEqual(r?.headers, ['www-authenticate', 'Basic realm="orders", charset="UTF-8"'])
    }
  })

  test('two Authorization headers are refused even when one is right', () => {
    const { r } = run(h, ['authorization', basic('bob', 'builder'), 'authorization', basic('alice', 'x')])
    assert.equal(body(r).code, 'GH_ERR_AUTH_INVALID')
  })

  test('the scheme is case-insensitive and the password may contain colons and UTF-8', () => {
    assert.deepEqual(parseBasic(`bAsIc   ${Buffer.from('jörg:a:b:ç').toString('base64')}`), { user: 'jörg', password: 'a:b:ç' })
    const u = handler({ users: [{ username: 'jörg', passwordHash: sha('a:b:ç') }] })
    assert.equal(run(u, ['authorization', `BASIC ${Buffer.from('jörg:a:b:ç').toString('base64')}`]).ex.consumer, 'jörg')
  })

  test('the default realm is gatehouse', () => {
    const d = handler({ users: [{ username: 'bob', passwordHash: sha('builder') }] })
    assert.deepEqual(run(d, []).r?.headers, ['www-authenticate', 'Basic realm="gatehouse", charset="UTF-8"'])
  })
})

describe('the bcrypt verification cache', () => {
  function timed(h: RequestHandler, headers: HeaderList): { ms: number; r: LocalResponse | undefined } {
    const t = process.hrtime.bigint()
    const { r } = run(h, headers)
    return { ms: Number(process.hrtime.bigint() - t) / 1e6, r }
  }

  test('a repeated successful bcrypt check is answered from the cache, a wrong password never is', () => {
    const h = handler({ users: [{ username: 'alice', passwordHash: bc('wonderland', 10) }] })
    const first = timed(h, ['authorization', basic('alice', 'wonderland')])
    assert.equal(first.r, undefined)
    const second = timed(h, ['authorization', basic('alice', 'wonderland')])
    assert.equal(second.r, undefined)
    assert.ok(first.ms > 10 * second.ms, `cached check ${second.ms} ms vs bcrypt ${first.ms} ms`)
    const wrong = timed(h, ['authorization', basic('alice', 'wonderlanD')])
    assert.equal(body(wrong.r).code, 'GH_ERR_AUTH_INVALID')
    assert.ok(wrong.ms > 10 * second.ms, 'a wrong password pays bcrypt')
  })

  test('an unknown user costs a bcrypt check too, so timing does not reveal which names exist', () => {
    const h = handler({ users: [{ username: 'alice', passwordHash: bc('wonderland', 10) }] })
    const known = timed(h, ['authorization', basic('alice', 'nope')])
    const unknown = timed(h, ['authorization', basic('zed', 'nope')])
    assert.equal(body(unknown.r).code, 'GH_ERR_AUTH_INVALID')
    assert.ok(unknown.ms > known.ms / 3 && unknown.ms < known.ms * 3, `unknown ${unknown.ms} ms vs known ${known.ms} ms`)
  })

  test('the LRU set evicts the least recently used key beyond its bound', () => {
    const s = new LruSet(2)
    s.add('a'); s.add('b')
    assert.equal(s.has('a'), true) // a is now newer than b
    s.add('c')
    assert.equal(s.has('b'), false)
    assert.equal(s.has('a'), true)
    assert.equal(s.has('c'), true)
    assert.equal(s.size, 2)
  })
})
