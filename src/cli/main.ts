#!/usr/bin/env node
/**
 * `gatehouse` command line: start, validate, reload, status, version.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { loadConfigDir, formatConfigError } from '../config/load.js'

const DEFAULT_CONFIG_DIR = '/etc/gatehouse/conf.d'
const DEFAULT_ADMIN = 'http://127.0.0.1:9901'

const HELP: Record<string, string> = {
  main: `Usage: gatehouse <command> [options]

Commands:
  start      run the gateway (primary + workers) in the foreground
  validate   check a config directory without starting anything
  reload     ask a running gateway to reload its config
  status     show a running gateway's workers and config version
  version    print the version

Run 'gatehouse <command> --help' for the options of a command.
`,
  start: `Usage: gatehouse start [--config DIR]

  -c, --config DIR   config directory (default ${DEFAULT_CONFIG_DIR})
      --admin-port N override the admin port of the config (e.g. for tests)

Runs in the foreground. SIGHUP reloads, SIGTERM/SIGINT drain and exit 0.
`,
  validate: `Usage: gatehouse validate DIR

Checks every YAML file in DIR like the gateway does before a (re)load.
Prints compiler-style errors (file:line:col: path: message); exit 0 valid, 1 invalid.
`,
  reload: `Usage: gatehouse reload [--admin URL] [--token TOKEN] [--config DIR]

Asks the running gateway to validate and apply its config directory. Exit 0 when the
new config serves, 1 when it was rejected (the errors are printed; the old config keeps
serving). The admin address is --admin, else the one in --config, else ${DEFAULT_ADMIN}.
The token is --token or $GATEHOUSE_ADMIN_TOKEN, else the one in --config.
`,
  status: `Usage: gatehouse status [--admin URL] [--token TOKEN] [--config DIR]

Prints the running gateway's status (workers: pid, CPU, restarts, config version, uptime).
`,
  version: `Usage: gatehouse version

Prints the Gatehouse version and the Node.js runtime.
`,
}

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string }
  return pkg.version
}

async function adminTarget(values: { admin?: string; token?: string; config?: string }): Promise<{ base: string; token: string | null }> {
  let base = values.admin ?? null
  let token = values.token ?? (process.env.GATEHOUSE_ADMIN_TOKEN || null)
  if ((base === null || token === null) && values.config !== undefined) {
    const loaded = await loadConfigDir(values.config)
    if (loaded.ok) {
      const a = loaded.snapshot.host.admin
      base ??= `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
      token ??= a.token
    }
  }
  return { base: (base ?? DEFAULT_ADMIN).replace(/\/$/, ''), token }
}

async function callAdmin(method: string, path: string, values: { admin?: string; token?: string; config?: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  const { base, token } = await adminTarget(values)
  const headers: Record<string, string> = {}
  if (token !== null) headers.authorization = `Bearer ${token}`
  try {
    const r = await fetch(base + path, { method, headers, signal: AbortSignal.timeout(60_000) })
    const text = await r.text()
    let body: Record<string, unknown>
    try {
      body = JSON.parse(text) as Record<string, unknown>
    } catch {
      body = { title: `HTTP ${r.status} from ${base}${path}`, detail: text.slice(0, 200) }
    }
    return { status: r.status, body }
  } catch (err) {
    process.stderr.write(`gatehouse: cannot reach the admin API at ${base}: ${(err as Error).cause ?? (err as Error).message}\n`)
    process.exit(2)
  }
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0]
  const rest = argv.slice(1)
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(HELP.main!); return cmd === undefined ? 1 : 0 }
  if (!(cmd in HELP) || cmd === 'main') { process.stderr.write(`gatehouse: unknown command '${cmd}'\n\n${HELP.main}`); return 1 }
  let parsed
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        config: { type: 'string', short: 'c' },
        admin: { type: 'string' },
        token: { type: 'string' },
        'admin-port': { type: 'string' },
      },
    })
  } catch (err) {
    process.stderr.write(`gatehouse ${cmd}: ${(err as Error).message}\n\n${HELP[cmd]!}`)
    return 1
  }
  const { values, positionals } = parsed
  if (values.help) { process.stdout.write(HELP[cmd]!); return 0 }

  switch (cmd) {
    case 'version':
      process.stdout.write(`gatehouse ${version()} (node ${process.version})\n`)
      return 0
    case 'validate': {
      const dir = positionals[0] ?? values.config
      if (dir === undefined) { process.stderr.write(HELP.validate!); return 1 }
      const r = await loadConfigDir(dir)
      if (r.ok) {
        const s = r.snapshot
        const apis = s.listeners.reduce((n, l) => n + l.apis.length, 0)
        process.stdout.write(`${dir}: valid (version ${s.version}; ${s.listeners.length} listeners, ${apis} APIs, ${Object.keys(s.services).length} services)\n`)
        return 0
      }
      for (const e of r.errors) process.stderr.write(formatConfigError(e) + '\n')
      process.stderr.write(`${dir}: ${r.errors.length} error(s)\n`)
      return 1
    }
    case 'reload': {
      const r = await callAdmin('POST', '/reload', values)
      if (r.status === 200) {
        process.stdout.write(r.body.changed ? `reloaded: now serving ${String(r.body.version)}\n` : `unchanged: still serving ${String(r.body.version)}\n`)
        return 0
      }
      const errors = Array.isArray(r.body.errors) ? (r.body.errors as string[]) : [String(r.body.detail ?? r.body.title)]
      for (const e of errors) process.stderr.write(e + '\n')
      process.stderr.write(`reload rejected: ${String(r.body.detail ?? r.body.title)}\n`)
      return 1
    }
    case 'status': {
      const r = await callAdmin('GET', '/status', values)
      process.stdout.write(JSON.stringify(r.body, null, 2) + '\n')
      return r.status === 200 ? 0 : 1
    }
    case 'start': {
      const { Gateway } = await import('../primary/main.js')
      const adminPort = values['admin-port'] === undefined ? undefined : Number(values['admin-port'])
      if (adminPort !== undefined && !(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65535)) {
        process.stderr.write(`gatehouse start: --admin-port must be a port number, got '${values['admin-port']}'\n`)
        return 1
      }
      const gw = new Gateway({ configDir: values.config ?? DEFAULT_CONFIG_DIR, adminPort })
      const ok = await gw.start()
      // A signal during start-up: stop() is draining and exits 0 itself.
      if (!ok && gw.isStopping) return -1
      if (!ok) process.exit(1) // forked workers or the admin socket must not keep us alive
      return -1 // keep running; the signal handlers exit
    }
  }
  return 1
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code }, (err: Error) => {
  process.stderr.write(`gatehouse: ${err.stack ?? err.message}\n`)
  process.exitCode = 1
})
