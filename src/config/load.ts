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
import { access, constants } from 'node:fs/promises'
import path from 'node:path'
import { compile } from './compile.js'
import { crossCheck } from './cross-check.js'
import type { ConfigError } from './errors.js'
import { redactString } from './redact.js'
import type { Snapshot } from './snapshot.js'
import { substitute } from './substitute.js'
import { emptyResources, validateDocument, type Resources } from './validate.js'
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
  errors.push(...(await checkTlsFiles(resources, dir)))
  const list = [...secrets]
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors, read.files).map((e) => redactError(e, list)) }
  return { ok: true, snapshot: compile(resources, { baseDir: dir }), secrets: list, files: read.files }
}

/** `gatehouse validate` should catch a missing certificate, not the listener at start. */
async function checkTlsFiles(r: Resources, dir: string): Promise<ConfigError[]> {
  const errors: ConfigError[] = []
  for (const { src, value } of r.apis) {
    const tls = value.spec.tls
    if (!tls) continue
    for (const field of ['certFile', 'keyFile'] as const) {
      try {
        await access(path.resolve(dir, tls[field]), constants.R_OK)
      } catch (err) {
        errors.push(errorAt(src, ['spec', 'tls', field], `cannot read ${tls[field]} (${(err as NodeJS.ErrnoException).code ?? 'error'})`))
      }
    }
  }
  return errors
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
