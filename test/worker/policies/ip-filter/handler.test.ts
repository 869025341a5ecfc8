/**
 * White-box: CIDR matching (IPv4, IPv6, IPv4-mapped), deny over allow, and the walk over
 * X-Forwarded-For with trusted proxies, calling the factory with a minimal Exchange-like object.
 */
import assert from 'node:assert/strict'
import { BlockList } from 'node:net'
import { describe, test } from 'node:test'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { HeaderList } from '../../../../src/worker/headers.js'
import { forwardedClient, parseForwarded, unmap } from '../../../../src/worker/policies/ip-filter/address.js'
import { ipFilter } from '../../../../src/worker/policies/ip-filter/handler.js'
import type { IpFilterConfig } from '../../../../src/worker/policies/ip-filter/schema.js'
import type { LocalResponse, RequestHandler } from '../../../../src/worker/policies/types.js'

function handler(config: IpFilterConfig): RequestHandler {
  const h = ipFilter.create(config, { id: 't', api: 'a', services: { leases: null } }).request
  assert.ok(h !== null)
  return h
}

function trustedList(...cidrs: string[]): BlockList {
  const b = new BlockList()
  for (const c of cidrs) {
    const [a, bits] = c.split('/') as [string, string]
    b.addSubnet(a, Number(bits), a.includes(':') ? 'ipv6' : 'ipv4')
  }
  return b
}

function decide(h: RequestHandler, clientIp: string, headers: HeaderList = [], trusted: BlockList | null = null): LocalResponse | undefined {
  const ex = { clientIp, headers, runtime: { trustedProxies: trusted } } as unknown as Exchange
  const r = h(ex)
  assert.ok(!(r instanceof Promise), 'ip-filter answers synchronously')
  return r
}

function allowed(h: RequestHandler, ip: string, headers: HeaderList = [], trusted: BlockList | null = null): boolean {
  const r = decide(h, ip, headers, trusted)
  if (r === undefined) return true
  assert.equal(r.status, 403)
  assert.equal((JSON.parse(r.body) as { code: string }).code, 'GH_ERR_IP_FORBIDDEN')
  return false
}

describe('address lists', () => {
  test('an allow list admits only its IPv4 networks and addresses', () => {
    const h = handler({ allow: ['10.0.0.0/8', '192.168.1.7'] })
    assert.equal(allowed(h, '10.255.0.1'), true)
    assert.equal(allowed(h, '192.168.1.7'), true)
    assert.equal(allowed(h, '192.168.1.8'), false)
    assert.equal(allowed(h, '11.0.0.1'), false)
    assert.equal(allowed(h, '2001:db8::1'), false, 'an IPv6 client is not in an IPv4-only allow list')
  })

  test('deny wins over allow', () => {
    const h = handler({ allow: ['10.0.0.0/8'], deny: ['10.6.6.0/24'] })
    assert.equal(allowed(h, '10.6.5.255'), true)
    assert.equal(allowed(h, '10.6.6.1'), false)
  })

  test('a deny list alone admits every other address', () => {
    const h = handler({ deny: ['203.0.113.0/24', '2001:db8:bad::/48'] })
    assert.equal(allowed(h, '203.0.113.9'), false)
    assert.equal(allowed(h, '198.51.100.1'), true)
    assert.equal(allowed(h, '2001:db8:bad:1::5'), false)
    assert.equal(allowed(h, '2001:db8:600d::5'), true)
  })

  test('IPv6 networks match compressed and expanded spellings alike', () => {
    const h = handler({ allow: ['2001:db8::/32', '::1'] })
    assert.equal(allowed(h, '2001:db8:1:2::3'), true)
    assert.equal(allowed(h, '2001:0DB8:0000:0000:0000:0000:0000:0001'), true)
    assert.equal(allowed(h, '::1'), true)
    assert.equal(allowed(h, '2001:db9::1'), false)
    assert.equal(allowed(h, '127.0.0.1'), false)
  })

  test('an IPv4-mapped client address is treated as IPv4, and a mapped rule as the IPv4 network', () => {
    const v4 = handler({ allow: ['10.0.0.0/8'] })
    assert.equal(allowed(v4, '::ffff:10.1.2.3'), true)
    assert.equal(allowed(v4, '::ffff:a01:203'), true)
    assert.equal(allowed(v4, '::ffff:11.1.2.3'), false)
    const mapped = handler({ allow: ['::ffff:10.0.0.0/104', '::ffff:192.0.2.1'] })
    assert.equal(allowed(mapped, '10.9.9.9'), true)
    assert.equal(allowed(mapped, '192.0.2.1'), true)
    assert.equal(allowed(mapped, '11.0.0.1'), false)
    const wide = handler({ allow: ['::ffff:0.0.0.0/80'] })
    assert.equal(allowed(wide, '1.2.3.4'), true, 'a prefix shorter than /96 still covers the mapped range')
  })

  test('unmap turns mapped spellings into dotted IPv4 and leaves the rest alone', () => {
    assert.equal(unmap('::ffff:1.2.3.4'), '1.2.3.4')
    assert.equal(unmap('::FFFF:7b7b:7b7b'), '123.123.123.123')
    assert.equal(unmap('0:0:0:0:0:ffff:1.2.3.4'), '1.2.3.4')
    assert.equal(unmap('1.2.3.4'), '1.2.3.4')
    assert.equal(unmap('2001:db8::ffff:1.2.3.4'), '2001:db8::ffff:1.2.3.4')
    assert.equal(unmap('::1'), '::1')
  })
})

describe('X-Forwarded-For', () => {
  const proxies = trustedList('10.0.0.0/8', 'fd00::/8')

  test('entries may carry ports, brackets and mapped addresses', () => {
    assert.equal(parseForwarded(' 1.2.3.4 '), '1.2.3.4')
    assert.equal(parseForwarded('1.2.3.4:5678'), '1.2.3.4')
    assert.equal(parseForwarded('[2001:db8::1]:443'), '2001:db8::1')
    assert.equal(parseForwarded('2001:db8::1'), '2001:db8::1')
    assert.equal(parseForwarded('::ffff:1.2.3.4'), '1.2.3.4')
    assert.equal(parseForwarded('unknown'), null)
    assert.equal(parseForwarded(''), null)
  })

  test('the client is the right-most entry that is not a trusted proxy; anything left of it is ignored', () => {
    assert.equal(forwardedClient('6.6.6.6, 198.51.100.7, 10.0.0.2, 10.0.0.1', '10.0.0.1', proxies), '198.51.100.7')
    assert.equal(forwardedClient('2001:db8::7,fd00::1', 'fd00::1', proxies), '2001:db8::7')
    assert.equal(forwardedClient('198.51.100.7', '198.51.100.7', proxies), '198.51.100.7', 'an untrusted peer names itself')
  })

  test('all entries trusted falls back to the peer, and an unreadable entry where the walk stops gives null', () => {
    assert.equal(forwardedClient('10.1.1.1, 10.0.0.1', '10.0.0.1', proxies), '10.0.0.1')
    assert.equal(forwardedClient('1.2.3.4, unknown, 10.0.0.1', '10.0.0.1', proxies), null)
    assert.equal(forwardedClient('garbage, 1.2.3.4, 10.0.0.1', '10.0.0.1', proxies), '1.2.3.4', 'garbage left of the client is never read')
  })

  test('useForwardedFor filters on the forwarded client behind a trusted proxy', () => {
    const h = handler({ deny: ['198.51.100.0/24'], useForwardedFor: true })
    assert.equal(allowed(h, '10.0.0.1', ['x-forwarded-for', '198.51.100.7, 10.0.0.1'], proxies), false)
    assert.equal(allowed(h, '10.0.0.1', ['x-forwarded-for', '198.51.100.7, 203.0.113.1, 10.0.0.1'], proxies), true, 'a spoofed entry behind an untrusted hop is ignored')
    const unreadable = decide(h, '10.0.0.1', ['x-forwarded-for', 'unknown, 10.0.0.1'], proxies)
    assert.equal(unreadable?.status, 403)
    assert.match(unreadable!.body, /unreadable/)
  })

  test('without useForwardedFor, or without trusted proxies, the peer is the client', () => {
    const off = handler({ deny: ['198.51.100.0/24'] })
    assert.equal(allowed(off, '10.0.0.1', ['x-forwarded-for', '198.51.100.7, 10.0.0.1'], proxies), true)
    const on = handler({ deny: ['198.51.100.0/24'], useForwardedFor: true })
    assert.equal(allowed(on, '10.0.0.1', ['x-forwarded-for', '198.51.100.7, 10.0.0.1'], null), true)
    assert.equal(allowed(on, '198.51.100.9', [], proxies), false, 'no header: the peer')
  })
})
