// Installs the .deb for real, from the generated signed apt repository, on this machine:
// files, user, permissions, unit; `gatehouse validate` on the shipped example; the installed
// gateway run as the gatehouse user sends READY=1 to a notify socket we own and proxies a
// request; an upgrade keeps an edited conffile; purge leaves nothing behind.
// DESTRUCTIVE (writes /usr, /etc, adds a system user): runs only as root with
// GATEHOUSE_PACKAGE_TESTS=1, which .ci/run sets on its fresh machine.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, chmodSync, copyFileSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { enabled, ensureBuilt, out, root, sh } from './helpers.js'

const skip = !enabled ? 'set GATEHOUSE_PACKAGE_TESTS=1 (and run as root) to install the package on this machine'
  : process.getuid?.() !== 0 ? 'installing the package needs root' : false

const SOURCES = '/etc/apt/sources.list.d/gatehouse-test.sources'
const KEYRING = '/usr/share/keyrings/gatehouse-archive-keyring.gpg'
const CONFFILE = '/etc/gatehouse/conf.d/gatehouse.yaml'
const APT = ['-o', 'DPkg::Lock::Timeout=300', '-o', `Dir::Etc::sourcelist=${SOURCES}`, '-o', 'Dir::Etc::sourceparts=-', '-o', 'APT::Get::List-Cleanup=0']
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }

interface DgramSocket {
  on(event: 'message', listener: (buf: Buffer) => void): unknown
  bind(path: string): void
  close(): void
}

const work = mkdtempSync('/tmp/gh-apt-test-')
chmodSync(work, 0o755) // the gatehouse user reads the test config and sends to the socket here
const children: ChildProcess[] = []
const servers: Server[] = []
const sockets: DgramSocket[] = []

function apt(...args: string[]): string {
  const r = sh('apt-get', [...APT, ...args], { env })
  assert.equal(r.status, 0, `apt-get ${args.join(' ')}:\n${r.out}`)
  return r.out
}

function useRepo(dir: string): void {
  copyFileSync(path.join(dir, 'apt/gatehouse-archive-keyring.gpg'), KEYRING)
  chmodSync(KEYRING, 0o644)
  writeFileSync(SOURCES, `Types: deb\nURIs: file://${dir}/apt\nSuites: stable\nComponents: main\nSigned-By: ${KEYRING}\n`)
  apt('update', '-qq')
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

describe('apt install, upgrade and purge', { skip, concurrency: false }, () => {
  let deb = ''
  before(() => {
    ;({ deb } = ensureBuilt())
    useRepo(path.join(out, 'repo'))
  })
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const s of servers) s.close()
    for (const s of sockets) s.close()
    if (sh('dpkg-query', ['-W', '-f=${Status}', 'gatehouse']).out.includes('installed')) sh('apt-get', [...APT, 'purge', '-y', '-qq', 'gatehouse'], { env })
    rmSync(SOURCES, { force: true })
    rmSync(KEYRING, { force: true })
    rmSync(work, { recursive: true, force: true })
  })

  test('apt-get install gatehouse places files, user, permissions and the enabled unit', () => {
    apt('install', '-y', '-qq', 'gatehouse')
    for (const f of ['/usr/bin/gatehouse', '/usr/lib/gatehouse/bin/node', '/lib/systemd/system/gatehouse.service',
      '/usr/lib/sysctl.d/60-gatehouse.conf', '/etc/logrotate.d/gatehouse', CONFFILE, '/usr/share/man/man1/gatehouse.1.gz']) {
      assert.ok(existsSync(f), `${f} missing`)
    }
    assert.match(sh('getent', ['passwd', 'gatehouse']).out, /^gatehouse:x:\d+:\d+:[^:]*:\/var\/lib\/gatehouse:\/usr\/sbin\/nologin$/m)
    assert.equal(sh('getent', ['group', 'gatehouse']).status, 0)
    const uid = Number(sh('id', ['-u', 'gatehouse']).out)
    const gid = Number(sh('id', ['-g', 'gatehouse']).out)
    for (const d of ['/var/log/gatehouse', '/var/lib/gatehouse']) {
      const st = statSync(d)
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [uid, gid, 0o750], d)
    }
    const conf = statSync(CONFFILE)
    assert.deepEqual([conf.uid, conf.gid, conf.mode & 0o777], [0, gid, 0o640])
    assert.ok(lstatSync('/etc/systemd/system/multi-user.target.wants/gatehouse.service').isSymbolicLink(), 'service not enabled')
    const v = sh('systemd-analyze', ['verify', '/lib/systemd/system/gatehouse.service'])
    assert.equal(v.out.trim(), '', v.out)
    assert.match(sh('/usr/bin/gatehouse', ['version']).out, /^gatehouse \S+ \(node v20\./)
  })

  test('gatehouse validate passes on the shipped example config', () => {
    const r = sh('runuser', ['-u', 'gatehouse', '--', '/usr/bin/gatehouse', 'validate', '/etc/gatehouse/conf.d'])
    assert.equal(r.status, 0, r.out)
    assert.match(r.out, /valid/)
  })

  test('the installed gateway, run as gatehouse, sends READY=1 and proxies to an upstream', async () => {
    const upstream = createServer((req, res) => res.end(JSON.stringify({ path: req.url, via: req.headers['x-gateway'] })))
    servers.push(upstream)
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const upPort = (upstream.address() as AddressInfo).port
    const [port, adminPort] = [await freePort(), await freePort()]
    const confDir = path.join(work, 'conf.d')
    const example = readFileSync(CONFFILE, 'utf8')
      .replaceAll('http://127.0.0.1:8080/example', `http://127.0.0.1:${port}/example`)
      .replaceAll('http://127.0.0.1:9000', `http://127.0.0.1:${upPort}`)
      .replaceAll('http://127.0.0.1:9901', `http://127.0.0.1:${adminPort}`)
      .replace('workers: auto', 'workers: 2')
    sh('install', ['-d', '-m', '0755', confDir])
    writeFileSync(path.join(confDir, 'gatehouse.yaml'), example, { mode: 0o644 })

    // The notify socket, bound with the repo's unix-dgram like test/primary/sd-notify.test.ts.
    const unixDgram = createRequire(path.join(root, 'package.json'))('unix-dgram') as { createSocket(t: 'unix_dgram'): DgramSocket }
    const sockPath = path.join(work, 'notify.sock')
    const sock = unixDgram.createSocket('unix_dgram')
    sockets.push(sock)
    const messages: string[] = []
    const ready = new Promise<void>((resolve) => sock.on('message', (b) => { messages.push(b.toString()); if (/^READY=1$/m.test(b.toString())) resolve() }))
    sock.bind(sockPath)
    chmodSync(sockPath, 0o666)

    // setpriv execs the gateway in place, so the pid we signal is the primary's.
    const child = spawn('setpriv', ['--reuid=gatehouse', '--regid=gatehouse', '--init-groups', '--',
      '/usr/bin/gatehouse', 'start', '--config', confDir], { env: { PATH: '/usr/bin:/bin', NOTIFY_SOCKET: sockPath }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let output = ''
    child.stdout!.on('data', (d) => { output += d })
    child.stderr!.on('data', (d) => { output += d })
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    try {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no READY=1 in 30 s; got ${JSON.stringify(messages)}\n${output}`)), 30_000).unref())
    await Promise.race([ready, timeout, exited.then((c) => { throw new Error(`gateway exited ${c}:\n${output}`) })])

    const user = sh('ps', ['-o', 'user=', '-p', String(child.pid)]).out.trim()
    assert.equal(user, 'gatehouse')
    const r = await fetch(`http://127.0.0.1:${port}/example/v1/items?q=1`).catch((err: Error) => {
      throw new Error(`request failed (${String(err.cause ?? err)}); notify: ${JSON.stringify(messages)}\n${output}`)
    })
    assert.equal(r.status, 200)
    assert.deepEqual(await r.json(), { path: '/items?q=1', via: 'gatehouse' })

    child.kill('SIGTERM')
    assert.equal(await exited, 0, output)
    assert.ok(messages.some((m) => /^STOPPING=1$/m.test(m)), JSON.stringify(messages))
    } finally {
      // A failed assertion must not leave gatehouse processes behind (userdel would refuse).
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
    }
  })

  test('installing a newer build keeps the edited conffile', () => {
    appendFileSync(CONFFILE, '# edited by the admin\n')
    // A newer build: the same package with a higher version, served from a new repository
    // signed with the same key.
    const newer = path.join(work, 'newer')
    const unpacked = path.join(work, 'unpacked')
    sh('install', ['-d', newer])
    assert.equal(sh('dpkg-deb', ['-R', deb, unpacked]).status, 0)
    const control = path.join(unpacked, 'DEBIAN/control')
    const oldVersion = /^Version: (.+)$/m.exec(readFileSync(control, 'utf8'))![1]!
    const newVersion = `${oldVersion}+upgrade1`
    writeFileSync(control, readFileSync(control, 'utf8').replace(/^Version: .+$/m, `Version: ${newVersion}`))
    const b = sh('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', unpacked, path.join(newer, `gatehouse_${newVersion}_${path.basename(deb).split('_')[2]}`)])
    assert.equal(b.status, 0, b.out)
    for (const f of readdirSync(out)) if (f.endsWith('.rpm')) copyFileSync(path.join(out, f), path.join(newer, f))
    const repo = sh('sh', [path.join(root, 'packaging/repo/build-repo.sh'), newer], { env: { ...env, GATEHOUSE_GNUPGHOME: path.join(out, 'repo-key') } })
    assert.equal(repo.status, 0, repo.out)
    useRepo(path.join(newer, 'repo'))
    apt('install', '-y', '-qq', 'gatehouse')
    assert.equal(sh('dpkg-query', ['-W', '-f=${Version}', 'gatehouse']).out, newVersion)
    assert.match(readFileSync(CONFFILE, 'utf8'), /# edited by the admin\n$/)
    assert.ok(existsSync('/var/lib/gatehouse') && existsSync('/usr/lib/gatehouse/bin/node'))
  })

  test('apt-get purge removes everything the package created', () => {
    writeFileSync('/var/log/gatehouse/gatehouse.log', 'a log line\n')
    apt('purge', '-y', '-qq', 'gatehouse')
    for (const p of ['/usr/lib/gatehouse', '/usr/bin/gatehouse', '/etc/gatehouse', '/var/log/gatehouse', '/var/lib/gatehouse',
      '/lib/systemd/system/gatehouse.service', '/usr/lib/sysctl.d/60-gatehouse.conf', '/etc/logrotate.d/gatehouse',
      '/usr/share/doc/gatehouse', '/usr/share/man/man1/gatehouse.1.gz', '/etc/systemd/system/multi-user.target.wants/gatehouse.service',
      '/etc/systemd/system/gatehouse.service']) {
      assert.ok(!existsSync(p), `${p} left behind`)
    }
    assert.notEqual(sh('getent', ['passwd', 'gatehouse']).status, 0, 'user left behind')
    assert.notEqual(sh('getent', ['group', 'gatehouse']).status, 0, 'group left behind')
    const state = sh('sh', ['-c', 'grep -rl gatehouse /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null; ls /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null | grep gatehouse']).out
    assert.equal(state.trim(), '', 'deb-systemd-helper state left behind')
    assert.doesNotMatch(sh('dpkg-query', ['-W', '-f=${Status}', 'gatehouse']).out, /installed|config-files/)
  })
})
