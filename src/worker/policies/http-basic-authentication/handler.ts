/**
 * http-basic-authentication: checks `Authorization: Basic` credentials (RFC 7617) against
 * inline users and/or an htpasswd file, and names the consumer.
 *
 * - The htpasswd file is read in the factory, i.e. whenever a config is applied; a bad
 *   file throws, so the worker rejects the whole snapshot and keeps serving the old one.
 * - No or undecodable credentials → 401 GH_ERR_AUTH_MISSING; a wrong user or password
 *   (or two Authorization headers) → 401 GH_ERR_AUTH_INVALID. Both carry the
 *   `Basic realm="...", charset="UTF-8"` challenge (RFC 7617 §2.1).
 * - On success `ex.consumer` is the user name and the Authorization header is removed
 *   before the request goes upstream, unless `forwardCredentials` is set.
 *
 * @module
 * @example
 *   policies:
 *     - policyRef: { name: http-basic-authentication }
 *       config:
 *         realm: orders
 *         users: [{ username: alice, passwordHash: "$2y$10$..." }]   # htpasswd -nbB alice secret
 *         htpasswdFile: /etc/gatehouse/htpasswd
 */
import { createHmac, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Exchange } from '../../exchange.js'
import { removeHeader } from '../../headers.js'
import { problem } from '../../local-response.js'
import type { PolicyHandlers, PolicyModule } from '../types.js'
import { dummyHash, parseHash, parseHtpasswd, verifyHash, type UserEntry } from './credentials.js'
import { LruSet } from './lru.js'
import { order, schema, type HttpBasicAuthenticationConfig } from './schema.js'

const NAME = 'http-basic-authentication'

/**
 * Successful bcrypt checks remembered per policy instance. bcrypt costs ~50–100 ms of
 * blocked worker at cost 10, on every request of a client that sends Basic credentials
 * each time, as they all do. Remembering (user, password) pairs that verified makes the
 * repeat cheap (one HMAC). The trade-off: a worker memory dump then holds a fast keyed
 * hash of recent passwords instead of only bcrypt hashes. The key is random per instance
 * and never leaves the process, which rules out precomputed tables, and the cache dies
 * with the instance, so a reload that changes a password can never let the old one in.
 * Failures are not cached: a stream of wrong guesses still pays bcrypt each time, which
 * is the point of bcrypt, but also means such a stream occupies the worker; put a
 * rate-limit in front of auth where that matters.
 */
const CACHE_ENTRIES = 1000

/** Standard base64 (padding optional: some clients leave it off). */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
/** RFC 7617 §2.1 charset="UTF-8": invalid UTF-8 is garbled, not a different password. */
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** user and password out of an Authorization value, or null when it is not usable Basic. */
export function parseBasic(value: string): { user: string; password: string } | null {
  // Scheme is case-insensitive (RFC 9110 §11.1); one or more spaces before the token68.
  if (value.length < 7 || value.slice(0, 6).toLowerCase() !== 'basic ') return null
  const token = value.slice(6).trim()
  if (!BASE64.test(token)) return null
  let decoded: string
  try {
    decoded = utf8.decode(Buffer.from(token, 'base64'))
  } catch {
    return null
  }
  const colon = decoded.indexOf(':')
  if (colon <= 0) return null
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** Inline users then htpasswd users; a name defined twice is an error, not a silent override. */
function loadUsers(config: HttpBasicAuthenticationConfig): Map<string, UserEntry> {
  const entries: UserEntry[] = []
  for (const [i, u] of (config.users ?? []).entries()) {
    const hash = parseHash(u.passwordHash)
    if ('error' in hash) throw new Error(`${NAME}: users[${i}] (${u.username}): ${hash.error}`)
    entries.push({ username: u.username, hash, where: `users[${i}]` })
  }
  if (config.htpasswdFile !== undefined) {
    let text: string
    try {
      text = readFileSync(config.htpasswdFile, 'utf8')
    } catch (err) {
      throw new Error(`${NAME}: cannot read htpasswdFile ${config.htpasswdFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    try {
      entries.push(...parseHtpasswd(text, config.htpasswdFile))
    } catch (err) {
      throw new Error(`${NAME}: ${(err as Error).message}`)
    }
  }
  const users = new Map<string, UserEntry>()
  for (const e of entries) {
    const prev = users.get(e.username)
    if (prev !== undefined) throw new Error(`${NAME}: user "${e.username}" is defined twice (${prev.where} and ${e.where})`)
    users.set(e.username, e)
  }
  return users
}

export const httpBasicAuthentication: PolicyModule<HttpBasicAuthenticationConfig> = {
  name: NAME,
  order,
  schema,
  create(config): PolicyHandlers {
    const users = loadUsers(config)
    const dummy = dummyHash([...users.values()])
    const forwardCredentials = config.forwardCredentials ?? false
    const challenge = ['www-authenticate', `Basic realm="${config.realm ?? 'gatehouse'}", charset="UTF-8"`]
    const missing = problem('GH_ERR_AUTH_MISSING', 'Basic credentials required', challenge)
    const invalid = problem('GH_ERR_AUTH_INVALID', undefined, challenge)
    const several = problem('GH_ERR_AUTH_INVALID', 'more than one Authorization header', challenge)
    const verified = new LruSet(CACHE_ENTRIES)
    const cacheKey = randomBytes(32)

    function check(user: string, password: string): boolean {
      const entry = users.get(user)
      if (entry === undefined) {
        verifyHash(dummy, password) // same work as a known user: timing does not reveal which names exist
        return false
      }
      if (entry.hash.kind === 'sha') return verifyHash(entry.hash, password)
      // "user:password" is unambiguous: a user name cannot contain ":".
      const key = createHmac('sha256', cacheKey).update(`${user}:${password}`, 'utf8').digest('base64')
      if (verified.has(key)) return true
      if (!verifyHash(entry.hash, password)) return false
      verified.add(key)
      return true
    }

    return {
      request: function basicAuthRequest(ex: Exchange) {
        const h = ex.headers
        let value: string | null = null
        for (let i = 0; i < h.length; i += 2) {
          if (h[i] !== 'authorization') continue
          // Two Authorization headers: which one the upstream would believe is anyone's guess.
          if (value !== null) return several
          value = String(h[i + 1])
        }
        if (value === null) return missing
        const creds = parseBasic(value)
        if (creds === null) return missing
        if (!check(creds.user, creds.password)) return invalid
        ex.consumer = creds.user
        if (!forwardCredentials) removeHeader(h, 'authorization')
        return undefined
      },
      response: null,
    }
  },
}
