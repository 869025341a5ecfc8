// Fuzzes the config loader for a while: the properties of test/property/config-loader.test.ts,
// batch after batch with fresh seeds, until --seconds pass. Not run by CI (not a *.test.ts).
//
//   node --import tsx test/fuzz/fuzz-config.mjs [--seconds 60] [--mode all|raw|docs|mutations]
//                                               [--seed N] [--runs 200] [--out DIR]
//
// Every counterexample is printed with its mode, seed and path; `--mode M --seed N` replays
// that batch, and `--out DIR` also writes each failing directory to DIR/<mode>-<seed>/ for
// `gatehouse validate`. Exit status 1 when anything failed.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import fc from 'fast-check'
import { applyMutations, baseConfig, filesOf, generatedDocsArb, mutationsArb, rawFileArb } from '../property/arbitraries.ts'
import { checkLoad, ConfigWorkspace } from '../property/config-oracle.ts'

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    mode: { type: 'string', default: 'all' },
    seed: { type: 'string' },
    runs: { type: 'string', default: '200' },
    out: { type: 'string' },
  },
})
const seconds = Number(opts.seconds)
const runs = Number(opts.runs)
if (!(seconds > 0) || !(runs > 0)) throw new Error('--seconds and --runs must be positive numbers')

const ws = new ConfigWorkspace('gh-fuzz-config-')
const base = baseConfig(ws.fixtures)

/** mode → [arbitraries, files of one generated value]. */
const MODES = {
  raw: [[rawFileArb], (content) => ({ 'a.yaml': content })],
  docs: [[generatedDocsArb, fc.integer({ min: 1, max: 3 })], (docs, n) => filesOf(docs, n)],
  mutations: [[mutationsArb, fc.integer({ min: 1, max: 3 })], (m, n) => filesOf(applyMutations(base, m), n)],
}
const modes = opts.mode === 'all' ? Object.keys(MODES) : [opts.mode]
for (const m of modes) if (!(m in MODES)) throw new Error(`unknown --mode ${m} (all, ${Object.keys(MODES).join(', ')})`)

function property(mode) {
  const [arbs, toFiles] = MODES[mode]
  return fc.asyncProperty(...arbs, async (...args) => {
    const files = toFiles(...args)
    fc.pre(files !== undefined)
    await ws.withDir(files, (dir) => checkLoad(dir, { twice: mode === 'mutations' }))
  })
}

function show(mode, counterexample) {
  let files
  try {
    files = MODES[mode][1](...counterexample)
  } catch (err) {
    return `${fc.stringify(counterexample)}\n(cannot rebuild its files: ${err.message})`
  }
  return files === undefined ? fc.stringify(counterexample)
    : Object.entries(files).map(([name, body]) => `--- ${name} (${typeof body === 'string' ? `${body.length} chars` : `${body.length} bytes`}):\n${typeof body === 'string' ? body.slice(0, 4000) : Buffer.from(body).toString('hex').slice(0, 4000)}`).join('\n')
}

const end = Date.now() + seconds * 1000
const seen = new Map() // first line of the failure → count
let total = 0
let failures = 0
for (let i = 0; Date.now() < end; i++) {
  const mode = modes[i % modes.length]
  const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31)
  const r = await fc.check(property(mode), {
    seed, numRuns: runs, includeErrorInReport: true, plugins: [fc.interruptAfterTimeLimit(Math.max(1, end - Date.now()))],
  })
  total += r.numRuns
  if (r.failed && r.counterexample !== null) {
    failures++
    const why = String(r.errorInstance?.message ?? r.error).split('\n')[0]
    seen.set(why, (seen.get(why) ?? 0) + 1)
    if (seen.get(why) === 1) {
      console.log(`\n✗ ${mode}: seed ${r.seed}, path "${r.counterexamplePath}" (replay: --mode ${mode} --seed ${r.seed})`)
      console.log(`  ${String(r.errorInstance?.message ?? r.error).split('\n').slice(0, 6).join('\n  ')}`)
      console.log(show(mode, r.counterexample))
    } else {
      console.log(`✗ ${mode}: seed ${r.seed}: same failure as before (${why.slice(0, 100)})`)
    }
    if (opts.out !== undefined) {
      let files
      try { files = MODES[mode][1](...r.counterexample) } catch { files = undefined }
      if (files !== undefined) {
        const dir = path.join(opts.out, `${mode}-${r.seed}`)
        fs.mkdirSync(dir, { recursive: true })
        for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), body)
        console.log(`  written to ${dir}`)
      }
    }
  }
  if (opts.seed !== undefined) break // a replay is one batch
}
ws.cleanup()
console.log(`\nfuzz-config: ${total} runs in ${modes.join(', ')}, ${failures} failing batch(es), ${seen.size} distinct failure(s)`)
process.exitCode = failures > 0 ? 1 : 0
