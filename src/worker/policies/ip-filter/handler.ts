/**
 * ip-filter: allows or refuses a request by client address, before anything else looks
 * at it (order 15). `deny` wins over `allow`; without `allow`, every address that is not
 * denied passes. Both lists are node:net BlockLists built once in the factory.
 *
 * The client is `ex.clientIp` (the connection's peer, IPv4-mapped IPv6 already unmapped),
 * or with `useForwardedFor` the right-most X-Forwarded-For entry that is not one of the
 * Configuration's `trustedProxies` (see ./address.ts for how the header is walked).
 * Refused → 403 GH_ERR_IP_FORBIDDEN; nothing goes upstream.
 *
 * @module
 * @example
 *   policies:
 *     - policyRef: { name: ip-filter }
 *       config: { allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.6.6.0/24], useForwardedFor: true }
 */
import type { Exchange } from '../../exchange.js'
import { getHeader } from '../../headers.js'
import { problem } from '../../local-response.js'
import type { PolicyHandlers, PolicyModule } from '../types.js'
import { blockList, forwardedClient, listed, unmap } from './address.js'
import { order, schema, type IpFilterConfig } from './schema.js'

export const ipFilter: PolicyModule<IpFilterConfig> = {
  name: 'ip-filter',
  order,
  schema,
  create(config): PolicyHandlers {
    const allow = blockList(config.allow)
    const deny = blockList(config.deny)
    const forwarded = config.useForwardedFor ?? false
    const forbidden = problem('GH_ERR_IP_FORBIDDEN')
    const unknownClient = problem('GH_ERR_IP_FORBIDDEN', 'client address in X-Forwarded-For is unreadable')

    function permitted(ip: string): boolean {
      if (deny !== null && listed(deny, ip)) return false
      return allow === null || listed(allow, ip)
    }

    function clientOf(ex: Exchange): string | null {
      const peer = unmap(ex.clientIp)
      const trusted = ex.runtime.trustedProxies
      // Without trusted proxies handle-request kept no client X-Forwarded-For: the peer is all there is.
      if (!forwarded || trusted === null) return peer
      const xff = getHeader(ex.headers, 'x-forwarded-for')
      return xff === undefined ? peer : forwardedClient(String(xff), peer, trusted)
    }

    return {
      request: function ipFilterRequest(ex: Exchange) {
        const ip = clientOf(ex)
        if (ip === null) return unknownClient
        return permitted(ip) ? undefined : forbidden
      },
      response: null,
    }
  },
}
