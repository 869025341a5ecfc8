/**
 * header-injection: sets configured headers on the upstream request and/or the client
 * response. Names are lowercased and pairs flattened once, in the factory.
 *
 * @module
 */
import type { PolicyModule, PolicyHandlers } from '../types.js'
import type { Exchange } from '../../exchange.js'
import { getHeader, setHeader, type HeaderList } from '../../headers.js'
import { schema, order, type HeaderInjectionConfig } from './schema.js'

function flatten(m: Record<string, string> | undefined): string[] | null {
  if (m === undefined) return null
  const out: string[] = []
  for (const [k, v] of Object.entries(m)) out.push(k.toLowerCase(), v)
  return out.length === 0 ? null : out
}

function apply(h: HeaderList, pairs: string[], overwrite: boolean): void {
  for (let i = 0; i < pairs.length; i += 2) {
    if (!overwrite && getHeader(h, pairs[i]!) !== undefined) continue
    setHeader(h, pairs[i]!, pairs[i + 1]!)
  }
}

export const headerInjection: PolicyModule<HeaderInjectionConfig> = {
  name: 'header-injection',
  order,
  schema,
  create(config): PolicyHandlers {
    const req = flatten(config.requestHeaders)
    const res = flatten(config.responseHeaders)
    const overwrite = config.overwrite ?? true
    return {
      request: req === null ? null : function injectRequestHeaders(ex: Exchange) {
        apply(ex.headers, req, overwrite)
        return undefined
      },
      response: res === null ? null : function injectResponseHeaders(ex: Exchange) {
        if (ex.responseHeaders !== null) apply(ex.responseHeaders, res, overwrite)
      },
    }
  },
}
