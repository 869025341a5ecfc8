#!/usr/bin/env node
// `npm run package`: builds gatehouse_<version>_<arch>.deb and gatehouse-<version>-1.<arch>.rpm
// into packaging/out/ from one staged tree, so both formats ship the same files.
//
//   node packaging/build.mjs [--version V] [--release N] [--out DIR] [--formats deb,rpm] [--repo]
//
// Staging (packaging/out/stage/root, laid out as on the target):
//   /usr/lib/gatehouse/        dist/src (compiled by `npm run build`), package.json,
//                              node_modules from `npm ci --omit=dev` (native modules built or
//                              picked for this machine), bin/node = the node running this script
//   /usr/bin/gatehouse         sh wrapper that execs the bundled node
//   /etc/gatehouse/conf.d/     the commented example config (a conffile)
//   /etc/gatehouse/fluent-bit/ fluent-bit/* from the repo root, when present at build time
//   /etc/logrotate.d/gatehouse, /usr/lib/sysctl.d/60-gatehouse.conf, the man page
// Unit files go to stage/units; each format puts them in its own unit directory.
// The packages are built for the architecture of this machine (the bundled node is its node).
// --repo also runs packaging/repo/build-repo.sh (signed apt + yum repositories).
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)
const { values } = parseArgs({
  options: {
    version: { type: 'string' },
    release: { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(here, 'out') },
    formats: { type: 'string', default: 'deb,rpm' },
    repo: { type: 'boolean', default: false },
    'no-compile': { type: 'boolean', default: false },
  },
})
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const version = values.version ?? pkg.version
const out = path.resolve(values.out)
const formats = values.formats.split(',').filter(Boolean)
if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version)) fail(`bad version '${version}'`)

function fail(msg) {
  console.error(`package: ${msg}`)
  process.exit(1)
}
function run(cmd, args, opts = {}) {
  console.log(`package: $ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.status !== 0) fail(`${cmd} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`)
}
function has(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0
}
function walk(dir, visit) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name)
    const st = statSync(p, { throwIfNoEntry: false })
    if (st === undefined) continue
    if (visit(p, name, st) === false) continue
    if (st.isDirectory()) walk(p, visit)
  }
}

const nodeArch = process.arch // x64, arm64
const abi = process.versions.modules
const stage = path.join(out, 'stage')
const tree = path.join(stage, 'root')
const app = path.join(tree, 'usr/lib/gatehouse')

rmSync(stage, { recursive: true, force: true })
mkdirSync(app, { recursive: true })
mkdirSync(path.join(stage, 'units'), { recursive: true })

// 1. The compiled app.
// Compiled afresh into the stage (as `npm run build` does, other outDir), so files left in
// dist/ by sources since removed are not shipped. --no-compile takes dist/ as it is.
let compiled = path.join(root, 'dist')
if (!values['no-compile']) {
  compiled = path.join(stage, 'tsc')
  run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', compiled], { cwd: root })
}
if (!existsSync(path.join(compiled, 'src/cli/main.js'))) fail(`${compiled}/src/cli/main.js is missing: run npm run build`)
cpSync(path.join(compiled, 'src'), path.join(app, 'dist/src'), { recursive: true })
if (!values['no-compile']) rmSync(compiled, { recursive: true, force: true })
const stagedPkg = { ...pkg, version }
delete stagedPkg.scripts
delete stagedPkg.devDependencies
writeFileSync(path.join(app, 'package.json'), JSON.stringify(stagedPkg, null, 2) + '\n')

// 2. Production node_modules, installed from the lock file by the node that runs this
// script, so native modules are built (unix-dgram) or picked (prebuilds) for its ABI/arch.
const npmDir = path.join(stage, 'npm')
mkdirSync(npmDir)
copyFileSync(path.join(root, 'package.json'), path.join(npmDir, 'package.json'))
copyFileSync(path.join(root, 'package-lock.json'), path.join(npmDir, 'package-lock.json'))
run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: npmDir,
  // node-gyp compiles against the headers of the running node (the nodejs package ships them).
  env: { ...process.env, npm_config_nodedir: existsSync('/usr/include/node/node.h') ? '/usr' : (process.env.npm_config_nodedir ?? '') },
})
if (!existsSync(path.join(npmDir, 'node_modules/unix-dgram/build/Release/unix_dgram.node'))) {
  fail('unix-dgram did not build (needs make, g++, python3): the package would fall back to systemd-notify')
}
cpSync(path.join(npmDir, 'node_modules'), path.join(app, 'node_modules'), { recursive: true })
rmSync(npmDir, { recursive: true, force: true })

// Prune what does not run: docs, type declarations, sources and build intermediates of
// native modules, and binaries for other platforms, architectures and Node ABIs.
// LICENSE files stay (they go with the code they license).
const keepUws = `uws_linux_${nodeArch}_${abi}.node`
const dropDirs = new Set(['.bin', '.github', 'test', 'tests', '__tests__', 'example', 'examples', 'docs', 'obj.target', '.deps'])
const dropFile = /(\.md|\.markdown|\.d\.ts|\.d\.mts|\.d\.cts|\.ts\.map|\.js\.map|\.mjs\.map|\.cjs\.map|\.gyp|\.gypi|\.cc|\.cpp|\.c|\.h|\.hpp|\.mk|Makefile|\.npmignore|\.gitattributes|\.gitignore|CMakeLists\.txt|example\.html|\.eslintrc.*|\.editorconfig|\.travis\.yml|\.nycrc|tsconfig\.json)$/i
walk(path.join(app, 'node_modules'), (p, name, st) => {
  if (!st.isDirectory()) return
  const parent = path.basename(path.dirname(p))
  const nativeSrc = name === 'src' && existsSync(path.join(path.dirname(p), 'binding.gyp'))
  // node-gyp-build prebuilds/<platform>-<arch>[+<arch>]
  const foreign = parent === 'prebuilds' && name !== `linux-${nodeArch}`
  if (dropDirs.has(name) || nativeSrc || foreign) {
    rmSync(p, { recursive: true, force: true })
    return false
  }
})
walk(path.join(app, 'node_modules'), (p, name, st) => {
  if (st.isDirectory()) return
  // Dotfiles: npm's hidden lockfile, .gitkeep, editor and CI configs.
  if (name.startsWith('.') || dropFile.test(name) && !/^licen[cs]e/i.test(name)) rmSync(p, { force: true })
  // The gateway loads uWS from binaries/ (src/worker/uws.ts); dist/ holds a second copy.
  else if (name.startsWith('uws_') && name.endsWith('.node') && (name !== keepUws || path.basename(path.dirname(p)) !== 'binaries')) rmSync(p, { force: true })
  // Prebuilds for musl libc: the packages target glibc distributions.
  else if (name.endsWith('.musl.node')) rmSync(p, { force: true })
  else if (name === 'config.gypi' || name.endsWith('.Makefile') || name.endsWith('.target.mk')) rmSync(p, { force: true })
})
// Directories the pruning emptied.
;(function dropEmpty(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name)
    if (statSync(p).isDirectory()) dropEmpty(p)
  }
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true })
})(path.join(app, 'node_modules'))
// Everything is data, native modules included (dlopen needs no x bit); npm leaves
// scripts executable. Native modules lose symbol tables and .comment like any packaged ELF.
const nativeModules = []
walk(path.join(app, 'node_modules'), (p, name, st) => {
  chmodSync(p, st.isDirectory() ? 0o755 : 0o644)
  if (name.endsWith('.node') && st.isFile()) nativeModules.push(p)
})
if (!existsSync(path.join(app, 'node_modules/@trufflesuite/uws-js-unofficial/binaries', keepUws))) {
  fail(`uWebSockets.js has no ${keepUws}: this Node/architecture cannot be packaged`)
}

// 3. The Node.js runtime the app was built and tested with: this very binary. Debug
// information and symbol tables are not needed to run it (~100 MB less).
mkdirSync(path.join(app, 'bin'))
const nodeBin = path.join(app, 'bin/node')
copyFileSync(process.execPath, nodeBin)
chmodSync(nodeBin, 0o755)
if (has('strip')) run('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', nodeBin])
if (has('strip')) for (const f of nativeModules) run('strip', ['--strip-unneeded', '--remove-section=.comment', f])
const smoke = spawnSync(nodeBin, [path.join(app, 'dist/src/cli/main.js'), 'version'], { encoding: 'utf8' })
if (smoke.status !== 0 || !smoke.stdout.includes(version)) fail(`staged gatehouse does not run: ${smoke.stderr}${smoke.stdout}`)
// Node's own licence (and its bundled deps'), from the node package or the official tarball.
const nodeLicense = [path.join(path.dirname(process.execPath), '../LICENSE'), '/usr/share/doc/nodejs/LICENSE', '/usr/share/doc/nodejs/copyright'].find((f) => existsSync(f))

// 4. Everything around the app.
function put(src, dest, mode = 0o644) {
  const to = path.join(tree, dest)
  mkdirSync(path.dirname(to), { recursive: true })
  copyFileSync(path.join(here, src), to)
  chmodSync(to, mode)
}
put('common/gatehouse.sh', 'usr/bin/gatehouse', 0o755)
put('common/conf.d/gatehouse.yaml', 'etc/gatehouse/conf.d/gatehouse.yaml')
put('common/gatehouse.logrotate', 'etc/logrotate.d/gatehouse')
put('common/60-gatehouse.conf', 'usr/lib/sysctl.d/60-gatehouse.conf')
mkdirSync(path.join(tree, 'usr/share/man/man1'), { recursive: true })
writeFileSync(path.join(tree, 'usr/share/man/man1/gatehouse.1.gz'), gzipSync(readFileSync(path.join(here, 'common/gatehouse.1')), { level: 9 }))
copyFileSync(path.join(here, 'common/gatehouse.service'), path.join(stage, 'units/gatehouse.service'))
// Another engineer's fluent-bit/ directory: configs under /etc/gatehouse/fluent-bit/, unit
// files beside ours (installed, not enabled: fluent-bit itself is a separate package).
const fluentBit = path.join(root, 'fluent-bit')
const fluentFiles = []
if (existsSync(fluentBit)) {
  for (const name of readdirSync(fluentBit).sort()) {
    const p = path.join(fluentBit, name)
    if (!statSync(p).isFile() || name.startsWith('.') || /\.md$/i.test(name)) continue
    if (name.endsWith('.service') || name.endsWith('.timer')) copyFileSync(p, path.join(stage, 'units', name))
    else {
      put(path.relative(here, p), `etc/gatehouse/fluent-bit/${name}`)
      fluentFiles.push(`/etc/gatehouse/fluent-bit/${name}`)
    }
  }
}
const units = readdirSync(path.join(stage, 'units')).sort()
writeFileSync(path.join(stage, 'meta.json'), JSON.stringify({ version, release: values.release, nodeArch, abi, node: process.version, units, fluentFiles, nodeLicense: nodeLicense ?? null }, null, 2) + '\n')
console.log(`package: staged gatehouse ${version} (node ${process.version}, ${nodeArch}, units: ${units.join(' ')})`)

// 5. The packages.
const env = { ...process.env, GATEHOUSE_STAGE: stage, GATEHOUSE_OUT: out, GATEHOUSE_VERSION: version, GATEHOUSE_RELEASE: values.release }
for (const f of formats) {
  if (f === 'deb') run('sh', [path.join(here, 'deb/build.sh')], { env })
  else if (f === 'rpm') run('sh', [path.join(here, 'rpm/build.sh')], { env })
  else fail(`unknown format '${f}'`)
}
if (values.repo) run('sh', [path.join(here, 'repo/build-repo.sh'), out], { env })
