/**
 * header-removal: drops configured headers from the upstream request and/or the client
 * response (case-insensitive; names lowercased once in the factory).
 *
 * @module
 */
import type { PolicyModule, PolicyHandlers } from '../types.js'
import type { Exchange } from '../../exchange.js'
import { removeHeader, type HeaderList } from '../../headers.js'
import { schema, order, type HeaderRemovalConfig } from './schema.js'

function names(list: string[] | undefined): string[] | null {
  return list === undefined || list.length === 0 ? null : list.map((n) => n.toLowerCase())
}

function removeAll(h: HeaderList, list: string[]): void {
  for (let i = 0; i < list.length; i++) removeHeader(h, list[i]!)
}

export const headerRemoval: PolicyModule<HeaderRemovalConfig> = {
  name: 'header-removal',
  order,
  schema,
  create(config): PolicyHandlers {
    const req = names(config.requestHeaders)
    const res = names(config.responseHeaders)
    return {
      request: req === null ? null : function removeRequestHeaders(ex: Exchange) {
        removeAll(ex.headers, req)
        return undefined
      },
      response: res === null ? null : function removeResponseHeaders(ex: Exchange) {
        if (ex.responseHeaders !== null) removeAll(ex.responseHeaders, res)
      },
    }
  },
}
