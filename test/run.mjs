// Runs the test files with node's test runner (tsx for TypeScript). Files run one at a
// time: integration tests start real gateways with 2 workers on a 2-core machine, and
// parallel files would only measure contention. `node test/run.mjs unit|integration`
// narrows the set; integration tests live under test/integration/.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(fileURLToPath(import.meta.url))
const which = process.argv[2] ?? 'all'
const files = []
;(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name)
    if (statSync(p).isDirectory()) { if (name !== 'fixtures') walk(p); continue }
    if (!name.endsWith('.test.ts')) continue
    const integration = p.includes(`${path.sep}integration${path.sep}`)
    if (which === 'unit' && integration) continue
    if (which === 'integration' && !integration) continue
    files.push(path.relative(process.cwd(), p))
  }
})(root)
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000', ...files], { stdio: 'inherit' })
process.exit(r.status ?? 1)
