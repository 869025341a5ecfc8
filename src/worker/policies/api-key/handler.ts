/**
 * api-key: identifies the consumer by an API key sent in a header or a query parameter.
 * Keys are configured as SHA-256 hashes only (inline `keys` and/or a `keysFile`); the
 * presented key is hashed once and looked up by digest (see ./keys.ts for why that is
 * constant-time enough).
 *
 * - The keys file is read in the factory, i.e. whenever a config is applied; a bad file
 *   throws, so the worker rejects the whole snapshot and keeps serving the old one.
 * - No key → 401 GH_ERR_AUTH_MISSING; an unknown key (or more than one key) → 401
 *   GH_ERR_AUTH_INVALID. Both carry `WWW-Authenticate: ApiKey`: RFC 9110 §15.5.2 requires
 *   a challenge on every 401, and although "ApiKey" is not a registered scheme it is the
 *   common convention (OpenAPI's apiKey) and tells a client what is expected.
 * - On success `ex.consumer` is the key's name, and the key is removed from the upstream
 *   request (the header, or the parameter from the query string) unless `forwardKey`.
 *
 * @module
 * @example
 *   # printf %s 'the-key' | sha256sum
 *   policies:
 *     - policyRef: { name: api-key }
 *       config:
 *         keys: [{ name: billing, keyHash: "sha256:6b6d..." }]
 *         keysFile: /etc/gatehouse/api-keys      # billing:6b6d... per line
 */
import { readFileSync } from 'node:fs'
import type { Exchange } from '../../exchange.js'
import { removeHeader } from '../../headers.js'
import { problem } from '../../local-response.js'
import type { LocalResponse, PolicyHandlers, PolicyModule } from '../types.js'
import { keyDigest, keyTable, parseKeysFile, type KeyEntry } from './keys.js'
import { order, schema, type ApiKeyConfig } from './schema.js'

const NAME = 'api-key'

function loadKeys(config: ApiKeyConfig): Map<string, string> {
  const entries: KeyEntry[] = (config.keys ?? []).map((k, i) => ({ name: k.name, digest: k.keyHash.slice(7).toLowerCase(), where: `keys[${i}]` }))
  if (config.keysFile !== undefined) {
    let text: string
    try {
      text = readFileSync(config.keysFile, 'utf8')
    } catch (err) {
      throw new Error(`${NAME}: cannot read keysFile ${config.keysFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    try {
      entries.push(...parseKeysFile(text, config.keysFile))
    } catch (err) {
      throw new Error(`${NAME}: ${(err as Error).message}`)
    }
  }
  try {
    return keyTable(entries)
  } catch (err) {
    throw new Error(`${NAME}: ${(err as Error).message}`)
  }
}

/** application/x-www-form-urlencoded decoding of one name or value; null when malformed. */
function formDecode(s: string): string | null {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s
  try {
    return decodeURIComponent(s.replaceAll('+', ' '))
  } catch {
    return null
  }
}

/** What findQueryKey found: the key (or null), how many there were, and the query without them. */
export interface QueryKey {
  key: string | null
  count: number
  /** The query string without the key parameter(s); other parameters byte for byte. */
  rest: string
  malformed: boolean
}

/** Finds parameter `name` in a raw query string ("a=1&api_key=x"); names compare decoded. */
export function findQueryKey(query: string, name: string): QueryKey {
  const r: QueryKey = { key: null, count: 0, rest: query, malformed: false }
  if (query === '') return r
  const parts = query.split('&')
  const kept: string[] = []
  for (const part of parts) {
    const eq = part.indexOf('=')
    const k = formDecode(eq === -1 ? part : part.slice(0, eq))
    if (k !== name) { kept.push(part); continue }
    r.count++
    const v = eq === -1 ? '' : formDecode(part.slice(eq + 1))
    if (v === null) r.malformed = true
    else r.key = v
  }
  if (r.count > 0) r.rest = kept.join('&')
  return r
}

export const apiKey: PolicyModule<ApiKeyConfig> = {
  name: NAME,
  order,
  schema,
  create(config): PolicyHandlers {
    const table = loadKeys(config)
    const inQuery = (config.in ?? 'header') === 'query'
    // Header names are matched lowercase (ex.headers holds them so); parameters exactly.
    const name = inQuery ? config.name ?? 'api_key' : (config.name ?? 'x-api-key').toLowerCase()
    const forwardKey = config.forwardKey ?? false
    const challenge = ['www-authenticate', 'ApiKey']
    const missing = problem('GH_ERR_AUTH_MISSING', `API key required in ${inQuery ? 'query parameter' : 'header'} ${name}`, challenge)
    const invalid = problem('GH_ERR_AUTH_INVALID', 'unknown API key', challenge)
    const several = problem('GH_ERR_AUTH_INVALID', 'more than one API key', challenge)

    /** Looks the key up; sets the consumer or returns the rejection. */
    function admit(ex: Exchange, key: string): LocalResponse | undefined {
      if (key === '') return missing
      const consumer = table.get(keyDigest(key))
      if (consumer === undefined) return invalid
      ex.consumer = consumer
      return undefined
    }

    function apiKeyFromHeader(ex: Exchange): LocalResponse | undefined {
      const h = ex.headers
      let key: string | null = null
      for (let i = 0; i < h.length; i += 2) {
        if (h[i] !== name) continue
        if (key !== null) return several
        key = String(h[i + 1]).trim()
      }
      if (key === null) return missing
      const r = admit(ex, key)
      if (r === undefined && !forwardKey) removeHeader(h, name)
      return r
    }

    function apiKeyFromQuery(ex: Exchange): LocalResponse | undefined {
      const q = findQueryKey(ex.query, name)
      if (q.count === 0) return missing
      if (q.count > 1) return several
      if (q.malformed || q.key === null) return missing
      const r = admit(ex, q.key)
      if (r === undefined && !forwardKey) ex.query = q.rest
      return r
    }

    return { request: inQuery ? apiKeyFromQuery : apiKeyFromHeader, response: null }
  },
}
