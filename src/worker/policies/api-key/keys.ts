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
  const out: KeyEntry[] = []
  const problems: string[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const where = `${file}:${i + 1}`
    const colon = line.indexOf(':')
    if (colon <= 0) { problems.push(`${where}: expected "name:sha256hex"`); continue }
    const name = line.slice(0, colon)
    let hex = line.slice(colon + 1).trim()
    if (hex.startsWith('sha256:')) hex = hex.slice(7)
    // The line is not echoed: if it is a plaintext key by mistake, it must not reach a log.
    if (!HEX64.test(hex)) { problems.push(`${where}: key of "${name}" must be the 64 hex digits of its SHA-256 (printf %s KEY | sha256sum); plaintext keys are not accepted`); continue }
    out.push({ name, digest: hex.toLowerCase(), where })
  }
  if (problems.length > 0) throw new Error(`invalid keys file ${file}:\n  ${problems.join('\n  ')}`)
  return out
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
