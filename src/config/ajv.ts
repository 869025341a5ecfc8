/**
 * The validators and the translation of Ajv errors into positioned, human messages.
 *
 * Two Ajv instances on purpose: resource kinds are validated without inserting defaults
 * (see defaults.ts), policy configs with them, so a policy handler gets its options
 * complete. Compiled validators are cached per schema object.
 *
 * @module
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { TSchema } from '@sinclair/typebox'
import type { ConfigError, DocPath } from './errors.js'
import { normaliseCidr } from './address.js'
import { errorAt, type SourceDoc } from './yaml-source.js'

function makeAjv(useDefaults: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, useDefaults })
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' })
  ajv.addFormat('regex', { type: 'string', validate: (s: string) => regexError(s) === null })
  ajv.addFormat('cidr', { type: 'string', validate: (s: string) => normaliseCidr(s) !== null })
  return ajv
}

const kindAjv = makeAjv(false)
const policyAjv = makeAjv(true)
const cache = new WeakMap<TSchema, ValidateFunction>()

function validator(schema: TSchema, withDefaults: boolean): ValidateFunction {
  let v = cache.get(schema)
  if (!v) {
    v = (withDefaults ? policyAjv : kindAjv).compile(schema)
    cache.set(schema, v)
  }
  return v
}

/**
 * Validates `data` (found at `at` inside the document) and returns positioned errors.
 * Policy configs are validated with defaults applied in place.
 */
export function validateAt(src: SourceDoc, at: DocPath, schema: TSchema, data: unknown, withDefaults = false): ConfigError[] {
  const v = validator(schema, withDefaults)
  if (v(data)) return []
  const out: ConfigError[] = []
  const seen = new Set<string>()
  for (const e of collapseUnions(v.errors ?? [])) {
    const rel = instancePath(e.instancePath, data)
    const { path, message, key } = describe(e, rel)
    const err = errorAt(src, [...at, ...path], message, key)
    const id = `${err.path}\0${err.message}`
    if (!seen.has(id)) {
      seen.add(id)
      out.push(err)
    }
  }
  return out
}

/**
 * The JS engine's reason ("Unterminated group"), or null if valid. V8 prefixes it with
 * the source, which the error position already shows.
 */
export function regexError(source: string): string | null {
  try {
    new RegExp(source)
    // What the worker compiles (src/worker/rules.ts); the raw check above gives the clearer text.
    new RegExp(`^(?:${source})$`)
    return null
  } catch (err) {
    const msg = (err as Error).message
    const prefix = `Invalid regular expression: /${source}/: `
    return msg.startsWith(prefix) ? msg.slice(prefix.length) : msg.replace(/^Invalid regular expression: /, '')
  }
}

/**
 * Ajv reports every branch of a failed anyOf. Keep only the branch whose shape matches
 * the data (a mapping given for `string | {url, weight}` gets the object's errors), and
 * one summary error when no branch or several fit.
 */
function collapseUnions(errors: readonly ErrorObject[]): ErrorObject[] {
  let list = [...errors]
  for (const u of errors) {
    if (u.keyword !== 'anyOf') continue
    const prefix = `${u.schemaPath}/`
    const inside = list.filter((e) => e !== u && e.schemaPath.startsWith(prefix) && e.instancePath.startsWith(u.instancePath))
    const branches = (u.schema as unknown[]).length
    const byBranch = new Map<number, ErrorObject[]>()
    for (const e of inside) {
      const i = Number.parseInt(e.schemaPath.slice(prefix.length), 10)
      byBranch.set(i, [...(byBranch.get(i) ?? []), e])
    }
    const fitting: number[] = []
    for (let i = 0; i < branches; i++) {
      const errs = byBranch.get(i) ?? []
      const shapeMismatch = errs.some((e) => e.instancePath === u.instancePath && ['type', 'const', 'enum'].includes(e.keyword))
      if (!shapeMismatch) fitting.push(i)
    }
    const keep = fitting.length === 1 ? byBranch.get(fitting[0]!) ?? [] : [u]
    const at = list.indexOf(u)
    const drop = new Set([...inside, u])
    list = [...list.slice(0, at).filter((e) => !drop.has(e)), ...keep, ...list.slice(at + 1).filter((e) => !drop.has(e))]
  }
  return list
}

/** JSON pointer → path segments, with numbers where the data is a list. */
function instancePath(pointer: string, root: unknown): (string | number)[] {
  if (pointer === '') return []
  const out: (string | number)[] = []
  let cur: unknown = root
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (Array.isArray(cur)) {
      out.push(Number(seg))
      cur = cur[Number(seg)]
    } else {
      out.push(seg)
      cur = (cur as Record<string, unknown> | undefined)?.[seg]
    }
  }
  return out
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false',
  object: 'a mapping', array: 'a list', null: 'empty',
}

function typeOf(v: unknown): string {
  if (v === null || v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  // YAML's .nan and .inf are numbers too; "must be a number, got a number" would say nothing.
  if (typeof v === 'number') return !Number.isFinite(v) ? String(v) : Number.isInteger(v) ? 'an integer' : 'a number'
  if (typeof v === 'boolean') return 'a boolean'
  return 'a string'
}

interface Described { path: (string | number)[]; message: string; key: boolean }

function describe(e: ErrorObject, path: (string | number)[]): Described {
  const ps = (e.parentSchema ?? {}) as Record<string, unknown>
  const custom = typeof ps.errorMessage === 'string' ? ps.errorMessage : null
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required':
      return { path, message: `missing required field "${String(p.missingProperty)}"`, key: false }
    case 'additionalProperties': {
      const k = String(p.additionalProperty)
      if (ps.patternProperties) {
        const inner = Object.values(ps.patternProperties as Record<string, Record<string, unknown>>)[0]
        const hint = typeof inner?.errorMessage === 'string' ? inner.errorMessage : null
        return { path: [...path, k], message: hint ? `invalid key: ${hint}` : 'invalid key', key: true }
      }
      const known = Object.keys((ps.properties ?? {}) as object)
      const guess = closest(k, known)
      return { path: [...path, k], message: `unknown field${guess ? ` (did you mean "${guess}"?)` : ''}`, key: true }
    }
    case 'propertyNames':
      return { path, message: 'invalid key', key: false }
    case 'type':
      return { path, message: `must be ${TYPE_WORDS[String(p.type)] ?? String(p.type)}, got ${typeOf(e.data)}`, key: false }
    case 'const':
      return { path, message: `must be ${JSON.stringify(p.allowedValue)}`, key: false }
    case 'enum':
      return { path, message: `must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}`, key: false }
    case 'anyOf': {
      const consts = (e.schema as Record<string, unknown>[]).map((s) => s.const)
      if (custom) return { path, message: custom, key: false }
      if (consts.every((c) => c !== undefined)) return { path, message: `must be one of: ${consts.map(String).join(', ')}`, key: false }
      return { path, message: 'does not match any allowed form', key: false }
    }
    case 'format':
      if (p.format === 'regex') return { path, message: `invalid regular expression: ${regexError(String(e.data))}`, key: false }
      return { path, message: custom ?? `must be a valid ${String(p.format)}`, key: false }
    case 'pattern':
      return { path, message: custom ?? `must match ${String(p.pattern)}`, key: false }
    case 'minLength':
    case 'minItems':
    case 'minProperties':
      if (p.limit === 1) return { path, message: 'must not be empty', key: false }
      break
    case 'uniqueItems':
      return { path, message: `must not contain duplicates (items ${String(p.j)} and ${String(p.i)} are equal)`, key: false }
  }
  return { path, message: (e.message ?? 'is invalid').replace('must NOT', 'must not'), key: false }
}

/** A did-you-mean for field typos: edit distance ≤ 2, or a quarter of a long word. */
function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null
  let bestD = Math.max(2, Math.floor(word.length / 4)) + 1
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase())
    if (d < bestD) {
      best = c
      bestD = d
    }
  }
  return best
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}
