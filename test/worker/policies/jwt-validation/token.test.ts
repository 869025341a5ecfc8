/**
 * White-box: where a bearer token is read from and how it is removed before the request
 * goes upstream (the reader both token policies share), and the expiring LRU.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { HeaderList } from '../../../../src/worker/headers.js'
import { ExpiringLru, tokenKey } from '../../../../src/worker/auth/lru.js'
import { tokenReader } from '../../../../src/worker/auth/token.js'

function ex(headers: HeaderList, query = ''): Exchange {
  return { headers, query } as unknown as Exchange
}

describe('token sources', () => {
  test('the default reads Authorization: Bearer with any scheme case and strips the header', () => {
    const r = tokenReader(undefined)
    const e = ex(['accept', '*/*', 'authorization', 'bEaReR   abc.def.ghi '])
    assert.equal(r.read(e), 'abc.def.ghi')
    r.strip(e)
    assert.deepEqual(e.headers, ['accept', '*/*'])
  })

  test('another scheme, a bare "Bearer" and an absent header count as no token', () => {
    const r = tokenReader(undefined)
    assert.equal(r.read(ex(['authorization', 'Basic dXNlcjpwdw=='])), null)
    assert.equal(r.read(ex(['authorization', 'Bearer'])), null)
    assert.equal(r.read(ex(['authorization', 'Bearer '])), null)
    assert.equal(r.read(ex(['authorization', 'Bearerabc'])), null)
    assert.equal(r.read(ex([])), null)
  })

  test('a custom header carries the bare token unless a scheme is configured', () => {
    assert.equal(tokenReader({ header: 'X-Token' }).read(ex(['x-token', ' t1 '])), 't1')
    assert.equal(tokenReader({ header: 'x-token', scheme: 'JWT' }).read(ex(['x-token', 'JWT t2'])), 't2')
    assert.equal(tokenReader({ header: 'x-token', scheme: 'JWT' }).read(ex(['x-token', 't2'])), null)
  })

  test('a query parameter is percent-decoded and removed from the forwarded query, other parameters kept', () => {
    const r = tokenReader({ query: 'access_token' })
    const e = ex([], 'a=1&access_token=x%2Ey&b=2&xaccess_token=no')
    assert.equal(r.read(e), 'x.y')
    r.strip(e)
    assert.equal(e.query, 'a=1&b=2&xaccess_token=no')
    assert.equal(r.read(ex([], 'access_token=%zz')), null, 'a malformed escape is no token')
    assert.equal(r.read(ex([], 'xaccess_token=1')), null)
  })

  test('a cookie is read (quoted or not) and removed from the Cookie header, which goes when it empties', () => {
    const r = tokenReader({ cookie: 'tok' })
    const e = ex(['cookie', 'a=1; tok="abc"; b=2', 'x', 'y'])
    assert.equal(r.read(e), 'abc')
    r.strip(e)
    assert.deepEqual(e.headers, ['cookie', 'a=1; b=2', 'x', 'y'])
    const only = ex(['cookie', 'tok=abc', 'x', 'y'])
    r.strip(only)
    assert.deepEqual(only.headers, ['x', 'y'])
    assert.equal(r.read(ex(['cookie', 'mytok=abc'])), null)
  })
})

describe('expiring LRU', () => {
  test('entries expire at their own time and the least recently used goes first when full', () => {
    const c = new ExpiringLru<number>(2)
    c.set('a', 1, 100)
    c.set('b', 2, 1000)
    assert.equal(c.get('a', 50), 1) // a is now the most recent
    c.set('c', 3, 1000)
    assert.equal(c.get('b', 50), undefined, 'b was the least recently used')
    assert.equal(c.get('a', 100), undefined, 'a expired at 100')
    assert.equal(c.get('c', 999), 3)
    assert.equal(c.size, 1)
  })

  test('a size of 0 keeps nothing, and keys are SHA-256 digests, not tokens', () => {
    const c = new ExpiringLru<number>(0)
    c.set('a', 1, 1e15)
    assert.equal(c.get('a', 0), undefined)
    assert.equal(tokenKey('secret-token').length, 44)
    assert.ok(!tokenKey('secret-token').includes('secret'))
  })
})
