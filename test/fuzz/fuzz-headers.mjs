// Fuzzes request headers through one real gateway (the built CLI: run `npm run build`
// first): the properties of test/integration/property-headers.test.ts, batch after batch with
// fresh seeds, until --seconds pass. Not run by CI (not a *.test.ts).
//
//   node --import tsx test/fuzz/fuzz-headers.mjs [--seconds 60] [--mode all|roundtrip|del|uws]
//                                                [--seed N] [--runs 200]
//
// roundtrip: valid header sets reach the upstream exactly, in order (200);
// del:       a value with DEL is answered 400 at once, nothing reaches the upstream, and
//            a valid request right after it is still proxied;
// uws:       what the pinned uWS build drops before JS runs (control chars in values,
//            non-token names, names with tchars other than letters/digits/"-") is closed
//            without a response and never reaches the upstream. uWS holds each such
//            connection ~10–12 s, so this mode sends --runs cases at once per batch and is
//            not part of `all`.
// Every counterexample is printed with its mode and seed; `--mode M --seed N` replays it.
// Exit status 1 when anything failed.
import { parseArgs } from 'node:util'
import fc from 'fast-check'
import { delHeaderCaseArb, uwsRejectedCaseArb, validHeaderCaseArb } from '../property/arbitraries.ts'
import { startHeaderRig } from '../property/header-rig.ts'

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    mode: { type: 'string', default: 'all' },
    seed: { type: 'string' },
    runs: { type: 'string', default: '200' },
  },
})
const seconds = Number(opts.seconds)
const runs = Number(opts.runs)
if (!(seconds > 0) || !(runs > 0)) throw new Error('--seconds and --runs must be positive numbers')
const MODES = ['roundtrip', 'del', 'uws']
const modes = opts.mode === 'all' ? ['roundtrip', 'del'] : [opts.mode]
for (const m of modes) if (!MODES.includes(m)) throw new Error(`unknown --mode ${m} (all, ${MODES.join(', ')})`)

const rig = await startHeaderRig()
const end = Date.now() + seconds * 1000
let total = 0
let failures = 0

function report(mode, seed, path, counterexample, error) {
  failures++
  console.log(`\n✗ ${mode}: seed ${seed}${path ? `, path "${path}"` : ''} (replay: --mode ${mode} --seed ${seed})`)
  console.log(`  ${String(error?.message ?? error).split('\n').slice(0, 8).join('\n  ')}`)
  // Control characters, DEL and non-ASCII as \xNN: they are what these cases are about.
  const shown = fc.stringify(counterexample).replace(/[\x00-\x08\x0b-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
  console.log(`  counterexample: ${shown}`)
  const log = rig.gw.output().trimEnd().split('\n').slice(-15).join('\n    ')
  if (log !== '') console.log(`  gateway output (last lines):\n    ${log}`)
}

/** One batch of `uws` cases, all at once (each waits for uWS's idle timeout). */
async function uwsBatch(seed) {
  const cases = fc.sample(uwsRejectedCaseArb, { numRuns: runs, seed })
  const before = rig.received.size
  const results = await Promise.all(cases.map((c) => rig.checkRejected(c, 16_000).then(() => null, (err) => [c, err])))
  total += cases.length
  for (const r of results) if (r !== null) report('uws', seed, '', r[0], r[1])
  if (rig.received.size !== before) report('uws', seed, '', cases, new Error(`${rig.received.size - before} request(s) reached the upstream`))
}

try {
  for (let i = 0; Date.now() < end; i++) {
    const mode = modes[i % modes.length]
    const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31)
    if (mode === 'uws') {
      await uwsBatch(seed)
    } else {
      const prop = mode === 'roundtrip'
        ? fc.asyncProperty(validHeaderCaseArb, (c) => rig.checkRoundTrip(c))
        : fc.asyncProperty(delHeaderCaseArb, async (c) => {
          const r = await rig.checkRejected(c, 5000)
          if (r.status !== 400) throw new Error(`closed without a 400 (${r.ms.toFixed(0)} ms)`)
          await rig.checkServing() // and the rejection left the gateway serving
        })
      const r = await fc.check(prop, {
        seed, numRuns: runs, includeErrorInReport: true, plugins: [fc.interruptAfterTimeLimit(Math.max(1, end - Date.now()))],
      })
      total += r.numRuns
      if (r.failed && r.counterexample !== null) report(mode, r.seed, r.counterexamplePath, r.counterexample[0], r.errorInstance ?? r.error)
    }
    if (opts.seed !== undefined) break // a replay is one batch
  }
} finally {
  await rig.stop()
}
console.log(`\nfuzz-headers: ${total} runs in ${modes.join(', ')}, ${failures} failure(s)`)
process.exitCode = failures > 0 ? 1 : 0
