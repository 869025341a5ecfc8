/**
 * Client addresses for ip-filter: address lists as BlockLists, IPv4-mapped IPv6 seen as
 * IPv4, and the walk over X-Forwarded-For.
 *
 * @module
 */
import { BlockList, isIP } from 'node:net'

/** BlockList of canonical or bare CIDRs (the schema's `cidr` format), or null for none. */
export function blockList(cidrs: readonly string[] | undefined): BlockList | null {
  if (cidrs === undefined || cidrs.length === 0) return null
  const list = new BlockList()
  for (const c of cidrs) {
    const slash = c.indexOf('/')
    const raw = slash === -1 ? c : c.slice(0, slash)
    let bits = slash === -1 ? -1 : Number(c.slice(slash + 1))
    let addr = raw
    // "::ffff:10.0.0.0/104" is the IPv4 net 10.0.0.0/8 written as IPv6 (a shorter prefix
    // reaches beyond the mapped range and stays an IPv6 network).
    if (bits === -1 || bits >= 96) {
      addr = unmap(raw)
      if (addr !== raw && bits !== -1) bits -= 96
    }
    const family = isIP(addr)
    if (family === 0 || Number.isNaN(bits)) throw new Error(`ip-filter: ${JSON.stringify(c)} is not an IP address or CIDR`)
    const type = family === 6 ? 'ipv6' : 'ipv4'
    if (bits === -1) list.addAddress(addr, type)
    else list.addSubnet(addr, bits, type)
  }
  return list
}

const MAPPED = /^(?:0{0,4}:){0,5}(?::|0{0,4}:)ffff:/i

/**
 * "::ffff:10.1.2.3" and "::ffff:a01:203" → "10.1.2.3"; anything else unchanged. An IPv4
 * client of a dual-stack socket shows up mapped, and an IPv4 rule must still apply to it.
 */
export function unmap(a: string): string {
  if (a.indexOf(':') === -1) return a
  const m = MAPPED.exec(a)
  if (m === null || isIP(a) !== 6) return a
  const rest = a.slice(m[0].length)
  if (isIP(rest) === 4) return rest
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(rest)
  if (hex === null) return a
  const hi = parseInt(hex[1]!, 16)
  const lo = parseInt(hex[2]!, 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}

/**
 * One X-Forwarded-For entry → an address, or null when it is not one. Proxies write
 * "1.2.3.4", "2001:db8::1", sometimes with a port ("1.2.3.4:5678", "[2001:db8::1]:5678").
 */
export function parseForwarded(entry: string): string | null {
  let s = entry.trim()
  if (s.charCodeAt(0) === 91 /* [ */) {
    const end = s.indexOf(']')
    if (end === -1) return null
    s = s.slice(1, end)
  } else if (s.indexOf(':') !== -1 && s.indexOf(':') === s.lastIndexOf(':') && s.indexOf('.') !== -1) {
    s = s.slice(0, s.indexOf(':')) // IPv4 with a port; an IPv6 address has two colons or more
  }
  s = unmap(s)
  return isIP(s) === 0 ? null : s
}

export function listed(list: BlockList, a: string): boolean {
  return list.check(a, a.indexOf(':') === -1 ? 'ipv4' : 'ipv6')
}

/**
 * The client according to X-Forwarded-For: walking from the right, the first entry that
 * is not a trusted proxy. Entries left of it were written by hosts we cannot vouch for, so
 * they are never used. The header here is the one handle-request rebuilt: the client's
 * own value with the peer appended when the peer is a trusted proxy, or the peer alone
 * when it is not (an untrusted peer's X-Forwarded-For is dropped), so an untrusted peer
 * always ends the walk at itself.
 *
 * All entries trusted (a request from inside the proxy tier) → the peer. An entry that is
 * not an address where the walk stops → null: a trusted proxy wrote something we cannot
 * read ("unknown"), and the caller fails closed rather than guess.
 */
export function forwardedClient(xff: string, peer: string, trusted: BlockList): string | null {
  let end = xff.length
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1)
    const a = parseForwarded(xff.slice(comma + 1, end))
    if (a === null) return null
    if (!listed(trusted, a)) return a
    end = comma === -1 ? 0 : comma
  }
  return peer
}
