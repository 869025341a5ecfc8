import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ERRORS, PROBLEM_BODIES, problemType } from '../src/errors.js'
import { ROOT } from './helpers/gateway.js'

const doc = fs.readFileSync(path.join(ROOT, 'docs/errors.md'), 'utf8')

test('the error table has the pinned number of codes (a new code must be documented and counted here)', () => {
  assert.equal(Object.keys(ERRORS).length, 35)
})

test('every error key equals its code and every code is GH_ERR_ prefixed', () => {
  for (const [key, spec] of Object.entries(ERRORS)) {
    assert.equal(spec.code, key)
    assert.match(key, /^GH_ERR_[A-Z_]+$/)
  }
})

test('every error code is documented in docs/errors.md with its status', () => {
  for (const spec of Object.values(ERRORS)) {
    assert.ok(doc.includes(`| \`${spec.code}\` | ${spec.status} |`), `${spec.code} (${spec.status}) missing from docs/errors.md`)
  }
})

test('every GH_ERR_/GH_WRN_ code used anywhere in src/ is documented', () => {
  const used = new Set<string>()
  ;(function walk(dir: string) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (p.endsWith('.ts')) for (const m of fs.readFileSync(p, 'utf8').matchAll(/\bGH_(?:ERR|WRN)_[A-Z_]+[A-Z]\b/g)) used.add(m[0])
    }
  })(path.join(ROOT, 'src'))
  const missing = [...used].filter((c) => !doc.includes(`\`${c}\``))
  assert.deepEqual(missing, [])
})

test('prebuilt problem bodies are RFC 9457 objects with type, title, status and code', () => {
  for (const spec of Object.values(ERRORS)) {
    const body = JSON.parse(PROBLEM_BODIES[spec.code as keyof typeof ERRORS]) as Record<string, unknown>
    assert.deepEqual(body, { type: problemType(spec.code), title: spec.title, status: spec.status, code: spec.code })
  }
})
