/**
 * The loader's contract, checked on one directory: `loadConfigDir` (what `gatehouse
 * validate`, `start` and reloads call) never throws and never hangs; it returns either a
 * snapshot the primary can send to workers, or positioned config errors, which the callers
 * report as GH_ERR_CONFIG_INVALID. Shared by config-loader.test.ts and test/fuzz/fuzz-config.mjs.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { formatConfigError, loadConfigDir, redact, type LoadResult } from '../../src/config/load.js'
import { ERRORS } from '../../src/errors.js'
import { FUZZ_ENV, type BaseFixtures, type ConfigFiles } from './arbitraries.js'

/**
 * A load slower than this is a hang for the properties. A normal one takes a few ms, the
 * worst generated (~800 nested collections) ~150 ms; the margin absorbs a busy machine.
 */
export const LOAD_TIME_LIMIT_MS = 5000

/** The code every caller attaches to a rejected config (CLI, primary start, /reload). */
export const CONFIG_ERROR_CODE = ERRORS.GH_ERR_CONFIG_INVALID.code

/** What `${env:...}`/`${file:../secret.txt}` in the arbitraries resolve to: redacted from every message. */
const SECRETS = [...Object.values(FUZZ_ENV).filter((v) => v.length >= 8), 'file-secret']

/** A JS failure dressed up as a config error message (e.g. caught by the toJS try/catch). */
const LEAKED_JS_ERROR = /\b(?:TypeError|RangeError|ReferenceError|InternalError)\b|is not a function|Cannot read propert|Cannot convert|is not iterable|Maximum call stack|circular structure|\[object Object\]/

/** One temp root holding the fixture files a valid config names and a directory per run. */
export class ConfigWorkspace {
  readonly root: string
  readonly fixtures: BaseFixtures
  private n = 0

  constructor(prefix = 'gh-prop-config-') {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    const f = (name: string, text: string) => {
      const p = path.join(this.root, name)
      fs.writeFileSync(p, text)
      return p
    }
    // `${file:../secret.txt}` in the arbitraries resolves to this from a run directory.
    f('secret.txt', 'file-secret\n')
    this.fixtures = {
      keysFile: f('keys.txt', `# name:sha256hex\nsvc2:${'b'.repeat(64)}\n`),
      htpasswdFile: f('htpasswd', 'bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n'),
      certFile: f('cert.pem', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'),
      keyFile: f('key.pem', '-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n'),
    }
  }

  /** Writes `files` into a fresh directory, runs `fn` on it, removes it. */
  async withDir<T>(files: ConfigFiles, fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = path.join(this.root, `run-${++this.n}`)
    fs.mkdirSync(dir)
    try {
      for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), body)
      return await fn(dir)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true })
  }
}

/** Loads `dir` and asserts the contract; with `twice`, also that a second load agrees. */
export async function checkLoad(dir: string, opts: { twice?: boolean } = {}): Promise<LoadResult> {
  const r = await loadOnce(dir)
  if (r.ok) checkSnapshot(r)
  else checkErrors(dir, r.errors)
  if (opts.twice) {
    const again = await loadOnce(dir)
    assert.deepEqual(summary(again), summary(r), 'loading the same directory twice must give the same result')
  }
  return r
}

async function loadOnce(dir: string): Promise<LoadResult> {
  const t0 = performance.now()
  let r: LoadResult
  try {
    r = await loadConfigDir(dir, { env: { ...FUZZ_ENV } })
  } catch (err) {
    const e = err as Error
    assert.fail(`loadConfigDir threw instead of returning config errors: ${e?.name}: ${e?.message}\n${e?.stack?.split('\n').slice(1, 6).join('\n') ?? ''}`)
  }
  const ms = performance.now() - t0
  assert.ok(ms < LOAD_TIME_LIMIT_MS, `loadConfigDir took ${ms.toFixed(0)} ms (limit ${LOAD_TIME_LIMIT_MS} ms)`)
  return r
}

function summary(r: LoadResult): unknown {
  return r.ok ? { ok: true, version: r.snapshot.version } : { ok: false, errors: r.errors.map(formatConfigError) }
}

function checkSnapshot(r: Extract<LoadResult, { ok: true }>): void {
  const s = r.snapshot
  assert.match(s.version, /^[0-9a-f]{16}$/)
  assert.ok(Object.isFrozen(s), 'the snapshot is frozen')
  // The primary sends the snapshot to workers over IPC (JSON): it must survive that unchanged,
  // so no Map, Set, Date, typed array, NaN, Infinity, undefined or cycle may hide in it.
  let json: string
  try {
    json = JSON.stringify(s)
  } catch (err) {
    assert.fail(`the snapshot does not serialize: ${(err as Error).message}`)
  }
  assert.deepStrictEqual(JSON.parse(json), structuredClone(s), 'the snapshot survives JSON (IPC) unchanged')
  // What /config and debug logging do with it.
  assert.doesNotThrow(() => redact(s, r.secrets))
  for (const sec of r.secrets) assert.equal(typeof sec, 'string')
}

function checkErrors(dir: string, errors: readonly unknown[]): void {
  assert.ok(errors.length > 0, 'a rejected config has at least one error')
  for (const raw of errors) {
    const e = raw as Record<string, unknown>
    const where = JSON.stringify(e)
    assert.equal(typeof e.file, 'string', `file: ${where}`)
    const file = e.file as string
    assert.ok(file === dir || path.dirname(file) === dir, `error file is the directory or a file in it: ${where}`)
    assert.ok(Number.isInteger(e.line) && (e.line as number) >= 0, `line: ${where}`)
    assert.ok(Number.isInteger(e.col) && (e.col as number) >= 0, `col: ${where}`)
    if ((e.line as number) > 0) assert.ok((e.col as number) >= 1, `a positioned error has a 1-based column: ${where}`)
    assert.equal(typeof e.path, 'string', `path: ${where}`)
    assert.equal(typeof e.message, 'string', `message: ${where}`)
    assert.ok((e.message as string).length > 0, `message is not empty: ${where}`)
    assert.doesNotMatch(e.message as string, LEAKED_JS_ERROR, `a JS exception passed off as a config error: ${where}`)
    for (const secret of SECRETS) assert.ok(!(e.message as string).includes(secret), `a substituted secret in an error message: ${where}`)
    const line = formatConfigError(e as never)
    assert.ok(line.startsWith(file), `formatted: ${line}`)
  }
}
