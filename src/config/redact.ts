/**
 * Redaction for every dump and log of config: substituted secrets are replaced wherever
 * they appear inside strings (a password embedded in a URL too), and fields whose name
 * says "secret" are blanked even when written inline.
 *
 * @module
 * @example
 *   log.info({ config: redact(snapshot, result.secrets) })
 */

export const REDACTED = '[REDACTED]'
const SECRET_FIELDS = new Set(['password', 'token', 'passphrase', 'secret'])

export function redact(value: unknown, secrets: readonly string[]): unknown {
  // Longest first, so a secret containing a shorter one is replaced whole.
  const list = [...new Set(secrets)].filter((s) => s !== '').sort((a, b) => b.length - a.length)
  return copy(value, list)
}

function copy(v: unknown, secrets: readonly string[]): unknown {
  if (typeof v === 'string') return redactString(v, secrets)
  if (Array.isArray(v)) return v.map((x) => copy(x, secrets))
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) {
      out[k] = SECRET_FIELDS.has(k.toLowerCase()) && x !== null && x !== undefined ? REDACTED : copy(x, secrets)
    }
    return out
  }
  return v
}

export function redactString(s: string, secrets: readonly string[]): string {
  let out = s
  for (const secret of secrets) if (out.includes(secret)) out = out.replaceAll(secret, REDACTED)
  return out
}
