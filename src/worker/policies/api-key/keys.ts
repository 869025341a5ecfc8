/**
 * API key tables: inline `keys` and `keysFile` lines → a Map from the hex SHA-256 of a
 * key to its consumer name. The worker hashes what a client presents once and looks the
 * digest up; it never compares secrets character by character, so timing says nothing
 * about how close a guess was (a Map lookup on a digest leaks at most which digests
 * share a hash bucket, and the digest of an unknown key is unpredictable).
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { parseColonFile } from '../../auth/credential-file.js'

export interface KeyEntry {
  readonly name: string
  /** Lowercase hex SHA-256 of the key. */
  readonly digest: string
  /** Where it was defined ("keys[0]", "/etc/gatehouse/keys:4"), for error messages. */
  readonly where: string
}

const HEX64 = /^[0-9a-fA-F]{64}$/

export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

/**
 * Parses a keys file: `name:sha256hex` per line (a `sha256:` before the hex is accepted
 * too), `#` comments and blank lines skipped. Throws one Error naming every bad line.
 */
export function parseKeysFile(text: string, file: string): KeyEntry[] {
  return parseColonFile<KeyEntry>(text, file, 'keys file', 'name:sha256hex', (name, rest, where) => {
    let hex = rest.trim()
    if (hex.startsWith('sha256:')) hex = hex.slice(7)
    if (!HEX64.test(hex)) return { error: `key of "${name}" must be the 64 hex digits of its SHA-256 (printf %s KEY | sha256sum); plaintext keys are not accepted` }
    return { value: { name, digest: hex.toLowerCase(), where } }
  })
}

/** digest → consumer; the same key twice (under any name) is an error, not a silent pick. */
export function keyTable(entries: readonly KeyEntry[]): Map<string, string> {
  const table = new Map<string, string>()
  const first = new Map<string, string>()
  for (const e of entries) {
    const prev = first.get(e.digest)
    if (prev !== undefined) throw new Error(`the same key is listed twice (${prev} and ${e.where})`)
    first.set(e.digest, e.where)
    table.set(e.digest, e.name)
  }
  return table
}
