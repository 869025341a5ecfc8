/**
 * `${env:NAME}` and `${file:/path}` inside string values, resolved on the YAML tree so a
 * missing variable is reported at the value that asked for it. `$${` escapes a literal
 * `${`. Every resolved value is a secret: the caller gets them back for redaction.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { isMap, isScalar, isSeq, type Scalar } from 'yaml'
import type { ConfigError, DocPath } from './errors.js'
import { errorAt, type SourceDoc } from './yaml-source.js'

const REF = /\$(\$?)\{(env|file):([^}]*)\}/g
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface SubstituteOptions {
  env: Record<string, string | undefined>
  /** Relative `${file:...}` paths resolve against the config directory. */
  baseDir: string
}

/** Rewrites string scalars in place. Returns the errors; adds resolved values to `secrets`. */
export async function substitute(src: SourceDoc, opts: SubstituteOptions, secrets: Set<string>): Promise<ConfigError[]> {
  const errors: ConfigError[] = []
  const scalars: [Scalar, DocPath][] = []
  collect(src.doc.contents, [], scalars)
  for (const [node, at] of scalars) {
    const text = node.value as string
    let out = ''
    let last = 0
    for (const m of text.matchAll(REF)) {
      out += text.slice(last, m.index)
      last = m.index + m[0].length
      const [whole, escape, scheme, arg] = m as unknown as [string, string, string, string]
      if (escape === '$') {
        out += whole.slice(1)
        continue
      }
      const resolved = scheme === 'env' ? resolveEnv(arg, opts) : await resolveFile(arg, opts)
      if (typeof resolved !== 'string') {
        errors.push(errorAt(src, at, resolved.error))
        continue
      }
      if (resolved !== '') secrets.add(resolved)
      out += resolved
    }
    if (last === 0) continue
    node.value = out + text.slice(last)
  }
  return errors
}

function resolveEnv(name: string, opts: SubstituteOptions): string | { error: string } {
  if (!ENV_NAME.test(name)) return { error: `invalid environment variable name in \${env:${name}}` }
  const v = opts.env[name]
  return v === undefined ? { error: `environment variable ${name} is not set` } : v
}

async function resolveFile(p: string, opts: SubstituteOptions): Promise<string | { error: string }> {
  if (p === '') return { error: 'empty path in ${file:}' }
  try {
    const text = await readFile(path.resolve(opts.baseDir, p), 'utf8')
    // Editors end files with a newline that is never part of the secret.
    return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text
  } catch (err) {
    return { error: `cannot read file ${p} (${(err as NodeJS.ErrnoException).code ?? 'error'})` }
  }
}

/** Values only: keys are field names and never hold secrets. */
function collect(node: unknown, at: (string | number)[], out: [Scalar, DocPath][]): void {
  if (isScalar(node)) {
    if (typeof node.value === 'string' && node.value.includes('${')) out.push([node, at])
  } else if (isMap(node)) {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '?'
      collect(pair.value, [...at, k], out)
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => collect(item, [...at, i], out))
  }
}
