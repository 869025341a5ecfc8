/** Fixture directories for config tests: one temp dir per case, all removed in after(). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { formatConfigError, loadConfigDir, type LoadResult } from '../../src/config/load.js'
import type { Snapshot } from '../../src/config/snapshot.js'

export type Files = Record<string, string | string[]>

export class Fixtures {
  readonly root = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-config-'))

  /** A fresh config dir holding `files` (arrays are joined as lines, so line N is index N-1). */
  dir(files: Files = {}): string {
    const dir = mkdtempSync(path.join(this.root, 'conf-'))
    for (const [name, body] of Object.entries(files)) {
      const file = path.join(dir, name)
      mkdirSync(path.dirname(file), { recursive: true })
      writeFileSync(file, Array.isArray(body) ? `${body.join('\n')}\n` : body)
    }
    return dir
  }

  /** A file outside any config dir, for ${file:} tests. */
  file(name: string, body: string): string {
    const p = path.join(this.root, name)
    writeFileSync(p, body)
    return p
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true })
  }
}

export async function errorsOf(dir: string, env: Record<string, string> = {}): Promise<string[]> {
  const r = await loadConfigDir(dir, { env })
  if (r.ok) throw new Error('expected the config to be rejected')
  return r.errors.map(formatConfigError)
}

export async function snapshotOf(dir: string, env: Record<string, string> = {}): Promise<Snapshot> {
  const r: LoadResult = await loadConfigDir(dir, { env })
  if (!r.ok) throw new Error(`expected a valid config:\n${r.errors.map(formatConfigError).join('\n')}`)
  return r.snapshot
}

/** The ApiInstance header most fixtures start with; 4 lines, so `spec:` is line 4. */
export function apiHead(name = 'orders'): string[] {
  return ['apiVersion: gatehouse/v1', 'kind: ApiInstance', `metadata: { name: ${name} }`, 'spec:']
}
export function serviceHead(name = 'backend'): string[] {
  return ['apiVersion: gatehouse/v1', 'kind: Service', `metadata: { name: ${name} }`, 'spec:']
}
