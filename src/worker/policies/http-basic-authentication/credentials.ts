/**
 * Password hashes for http-basic-authentication: parsing (inline users and htpasswd
 * files) and constant-time verification. Only bcrypt and `{SHA}` are accepted; Apache's
 * other formats (`$apr1$` MD5, crypt(3), plaintext) are refused at load, because each is
 * either weak enough to crack offline in minutes or not a hash at all.
 *
 * @module
 */
import { parseColonFile } from '../../auth/credential-file.js'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import bcrypt from 'bcryptjs'
import { PASSWORD_HASH } from './schema.js'

export type StoredHash =
  | { readonly kind: 'bcrypt'; readonly hash: Buffer; readonly salt: string; readonly cost: number }
  | { readonly kind: 'sha'; readonly digest: Buffer }

export interface UserEntry {
  readonly username: string
  readonly hash: StoredHash
  /** Where it was defined ("users[2]", "/etc/gatehouse/htpasswd:7"), for error messages. */
  readonly where: string
}

const VALID_HASH = new RegExp(PASSWORD_HASH)

/** A stored hash → its verifier form, or an error message saying what is wrong with it. */
export function parseHash(text: string): StoredHash | { error: string } {
  if (VALID_HASH.test(text)) {
    if (text.startsWith('{SHA}')) return { kind: 'sha', digest: Buffer.from(text.slice(5), 'base64') }
    return { kind: 'bcrypt', hash: Buffer.from(text, 'latin1'), salt: text.slice(0, 29), cost: Number(text.slice(4, 6)) }
  }
  if (text.startsWith('$apr1$')) return { error: 'Apache MD5 ($apr1$) hashes are not supported; re-create it with `htpasswd -B` (bcrypt)' }
  if (/^\$[0-9a-z]+\$/.test(text)) return { error: `unsupported hash scheme "${text.slice(0, text.indexOf('$', 1) + 1)}"; use bcrypt ($2a$/$2b$/$2y$, \`htpasswd -B\`) or {SHA}` }
  if (text.startsWith('{SHA}')) return { error: '{SHA} hash must be the base64 of a 20-byte SHA-1 digest (28 characters)' }
  return { error: 'not a bcrypt ($2a$/$2b$/$2y$) or {SHA} hash (plaintext and crypt(3) passwords are not accepted; use `htpasswd -B`)' }
}

/**
 * Parses an htpasswd file: `user:hash` per line, `#` comments and blank lines skipped.
 * Throws one Error naming every bad line (file:line), so an operator fixes them in one go.
 */
export function parseHtpasswd(text: string, file: string): UserEntry[] {
  return parseColonFile<UserEntry>(text, file, 'htpasswd file', 'user:hash', (username, rest, where) => {
    const hash = parseHash(rest)
    return 'error' in hash ? { error: `user "${username}": ${hash.error}` } : { value: { username, hash, where } }
  })
}

function sha1(password: string): Buffer {
  return createHash('sha1').update(password, 'utf8').digest()
}

/**
 * True when `password` matches. Both branches end in timingSafeEqual over equal-length
 * values (20-byte SHA-1 digests, 60-byte bcrypt strings), so no early exit reveals how
 * much of a guess was right. bcrypt uses only the first 72 bytes of a password.
 */
export function verifyHash(hash: StoredHash, password: string): boolean {
  if (hash.kind === 'sha') return timingSafeEqual(sha1(password), hash.digest)
  const computed = Buffer.from(bcrypt.hashSync(password, hash.salt), 'latin1')
  return computed.length === hash.hash.length && timingSafeEqual(computed, hash.hash)
}

/**
 * What an unknown user name is checked against, so a miss costs what a hit costs and the
 * response time does not reveal which names exist: bcrypt at the cost most users have
 * (not the highest, or one slow admin hash would make every unknown-name guess that
 * slow), or SHA-1 when no user has a bcrypt hash.
 */
export function dummyHash(entries: readonly UserEntry[]): StoredHash {
  const costs = new Map<number, number>()
  for (const e of entries) if (e.hash.kind === 'bcrypt') costs.set(e.hash.cost, (costs.get(e.hash.cost) ?? 0) + 1)
  if (costs.size === 0) return { kind: 'sha', digest: randomBytes(20) }
  let cost = 10
  let best = 0
  for (const [c, n] of costs) if (n > best) { best = n; cost = c }
  const salt = bcrypt.genSaltSync(cost)
  return { kind: 'bcrypt', salt, cost, hash: Buffer.from(salt + randomBytes(24).toString('base64').slice(0, 31), 'latin1') }
}
