/**
 * The config pipeline's entry: YAML directory → ${env:}/${file:} → per-document schema →
 * cross-resource checks → compiled Snapshot. All errors of all stages are collected, so
 * one `gatehouse validate` run shows everything that needs fixing.
 *
 * @module
 * @example
 *   const r = await loadConfigDir('conf.d')
 *   if (!r.ok) for (const e of r.errors) console.error(formatConfigError(e))
 *   else send(r.snapshot); log.debug(redact(r.snapshot, r.secrets))
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { compile } from './compile.js'
import { crossCheck } from './cross-check.js'
import type { ConfigError } from './errors.js'
import { redactString } from './redact.js'
import type { Snapshot } from './snapshot.js'
import { substitute } from './substitute.js'
import { emptyResources, validateDocument, type Res, type Resources } from './validate.js'
import { errorAt, readConfigDir } from './yaml-source.js'

export { formatConfigError, type ConfigError } from './errors.js'
export { redact } from './redact.js'

export type LoadResult =
  | { ok: true; snapshot: Snapshot; secrets: string[]; files: string[] }
  | { ok: false; errors: ConfigError[] }

export interface LoadOptions {
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>
}

export async function loadConfigDir(dir: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const read = await readConfigDir(dir)
  const errors = [...read.errors]
  const secrets = new Set<string>()
  const resources = emptyResources()
  const env = opts.env ?? process.env
  for (const src of read.docs) {
    const subErrors = await substitute(src, { env, baseDir: dir }, secrets)
    errors.push(...subErrors)
    validateDocument(src, resources, errors, new Set(subErrors.map((e) => e.path)))
  }
  errors.push(...crossCheck(resources))
  const referenced = await readReferencedFiles(resources, dir, errors)
  const list = [...secrets]
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors, read.files).map((e) => redactError(e, list)) }
  return { ok: true, snapshot: compile(resources, { baseDir: dir, fileDigest: referenced }), secrets: list, files: read.files }
}

/**
 * Files the config names (TLS certFile/keyFile, a policy's htpasswdFile, keysFile...) must
 * be readable, so `gatehouse validate` catches them rather than a worker at start,
 * and their content is part of the config: it is hashed into the snapshot version, so
 * editing only such a file and reloading is a change the workers apply.
 */
async function readReferencedFiles(r: Resources, dir: string, errors: ConfigError[]): Promise<string> {
  const hash = createHash('sha256')
  const visit = async (src: Res<unknown>['src'], at: (string | number)[], v: unknown): Promise<void> => {
    if (Array.isArray(v)) { for (let i = 0; i < v.length; i++) await visit(src, [...at, i], v[i]); return }
    if (v === null || typeof v !== 'object') return
    for (const [k, x] of Object.entries(v)) {
      if (k.endsWith('File') && typeof x === 'string') {
        try {
          hash.update(`${k}\0${x}\0`).update(await readFile(path.resolve(dir, x)))
        } catch (err) {
          errors.push(errorAt(src, [...at, k], `cannot read ${x} (${(err as NodeJS.ErrnoException).code ?? 'error'})`))
        }
      } else await visit(src, [...at, k], x)
    }
  }
  for (const a of r.apis) {
    const ps = a.value.spec.policies ?? []
    for (let i = 0; i < ps.length; i++) await visit(a.src, ['spec', 'policies', i, 'config'], ps[i]!.config)
    if (a.value.spec.tls) await visit(a.src, ['spec', 'tls'], a.value.spec.tls)
  }
  for (const b of r.bindings) await visit(b.src, ['spec', 'config'], b.value.spec.config)
  return hash.digest('hex')
}

/** File order (as read), then position: the order an editor would walk them. */
function sortErrors(errors: ConfigError[], files: string[]): ConfigError[] {
  const rank = (f: string) => {
    const i = files.indexOf(f)
    return i === -1 ? -1 : i
  }
  return errors
    .map((e, i) => ({ e, i }))
    .sort((a, b) => rank(a.e.file) - rank(b.e.file) || a.e.line - b.e.line || a.e.col - b.e.col || a.i - b.i)
    .map(({ e }) => e)
}

/** Messages may quote a value that came from a secret (an invalid URL, say). */
function redactError(e: ConfigError, secrets: string[]): ConfigError {
  const sorted = [...secrets].sort((a, b) => b.length - a.length)
  return { ...e, message: redactString(e.message, sorted) }
}
