// Shared by the packaging tests: whether they run, and the packages they look at.
// They run only with GATEHOUSE_PACKAGE_TESTS=1 (CI sets it): building takes a minute and
// needs lintian, rpm, rpmlint, createrepo-c and apt-utils. The install test also needs root
// and changes the machine (/usr, /etc, a system user), so it is for a fresh CI machine.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const out = process.env.GATEHOUSE_PACKAGE_OUT ?? path.join(root, 'packaging/out')
export const enabled = process.env.GATEHOUSE_PACKAGE_TESTS === '1'
export const skipReason = enabled ? false : 'set GATEHOUSE_PACKAGE_TESTS=1 to build and check the packages'

export function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}): { status: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
  if (r.error) throw r.error
  return { status: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

export function version(): string {
  return (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version
}

/** The built packages; `npm run package -- --repo` first unless they exist for this version. */
export function ensureBuilt(): { deb: string; rpm: string } {
  const v = version()
  const find = (re: RegExp): string | undefined => (existsSync(out) ? readdirSync(out).find((f) => re.test(f)) : undefined)
  const esc = v.replace(/[.+~]/g, '\\$&')
  let deb = find(new RegExp(`^gatehouse_${esc}-1_[a-z0-9]+\\.deb$`))
  let rpm = find(new RegExp(`^gatehouse-${esc}-1\\.[a-z0-9_]+\\.rpm$`))
  if (process.env.GATEHOUSE_PACKAGE_REBUILD === '1' || !deb || !rpm || !existsSync(path.join(out, 'repo/apt/dists/stable/InRelease'))) {
    const r = sh(process.execPath, [path.join(root, 'packaging/build.mjs'), '--repo', '--out', out], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('packaging/build.mjs failed')
    deb = find(new RegExp(`^gatehouse_${esc}-1_[a-z0-9]+\\.deb$`))
    rpm = find(new RegExp(`^gatehouse-${esc}-1\\.[a-z0-9_]+\\.rpm$`))
  }
  if (!deb || !rpm) throw new Error(`no packages for ${v} in ${out}`)
  return { deb: path.join(out, deb), rpm: path.join(out, rpm) }
}
