// `npm test` runs this first (npm's pretest). The integration tests start real programs:
// redis-server (shared rate-limit store), openssl (test certificates), promtool (checks
// the /metrics output), taskset (CPU pinning) and python3 (an sd_notify listener). On a Debian/Ubuntu machine where we are
// root, missing ones are installed with apt-get (saying so); otherwise the exact command
// is printed and the run stops, rather than failing later with a confusing error.
import { spawnSync } from 'node:child_process'

const need = { 'redis-server': 'redis-server', openssl: 'openssl', taskset: 'util-linux', python3: 'python3', promtool: 'prometheus' }
const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0
const missing = Object.entries(need).filter(([bin]) => !has(bin)).map(([, pkg]) => pkg)
if (missing.length === 0) process.exit(0)

const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`
if (process.getuid?.() === 0 && has('apt-get')) {
  console.log(`pretest: installing what the integration tests run: ${missing.join(', ')}`)
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
  const install = update.status === 0 ? spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }) : update
  if (install.status === 0) process.exit(0)
}
console.error(`pretest: the integration tests need ${missing.join(', ')}. Install them, e.g.:\n  sudo apt-get update && sudo ${cmd}`)
process.exit(1)
