/**
 * Properties of the config loader (issue 7): whatever a config directory holds, loading it
 * (src/config/load.ts loadConfigDir, what `gatehouse validate`/`start` and reloads run)
 * either yields a snapshot that survives IPC, or positioned config errors that the callers
 * report as GH_ERR_CONFIG_INVALID: never a thrown TypeError/RangeError, never a hang.
 * Each property is bounded by numRuns and a time limit; `node --import tsx
 * test/fuzz/fuzz-config.mjs` runs the same properties for longer.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import {
  applyMutations, baseConfig, filesOf, generatedDocsArb, mutationsArb, rawFileArb, yamlOf,
} from './arbitraries.js'
import { checkLoad, ConfigWorkspace } from './config-oracle.js'

const ws = new ConfigWorkspace()
after(() => ws.cleanup())

/** Per property: at most `numRuns`, and never longer than TIME_LIMIT_MS (shrinking included). */
const TIME_LIMIT_MS = 4000
const params = <T>(numRuns: number, examples: T[] = []) => ({
  numRuns, examples, includeErrorInReport: true, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
})

/** Counterexamples found by these properties, replayed on every run. */
const RAW_EXAMPLES: [string][] = [
  ['apiVersion: &a [*a]\nkind: Service\n'], // a recursive alias: JSON.stringify in the envelope message threw
  ['apiVersion: gatehouse/v1\nkind: &k [*k]\n'],
  [`apiVersion: gatehouse/v1\nkind: Service\nmetadata: { name: a }\nspec: { endpoints: ${'['.repeat(1000)}${']'.repeat(1000)} }\n`], // parser recursion
  ['apiVersion: gatehouse/v1\nkind: Service\nmetadata: { name: a }\nspec: { endpoints: [http://127.0.0.1:1], timeouts: !!omap [ connectMs: 5 ] }\n'], // a Map
  ['%YAML 1.1\n---\napiVersion: gatehouse/v1\nkind: ApiInstance\nmetadata: { name: a }\nspec:\n  address: http://127.0.0.1:18000/a\n  services: { s: { address: "http://127.0.0.1:19000", routes: [{}] } }\n  policies: [{ policyRef: { name: cors }, config: !!omap [ allowOrigins: ["*"] ] }]\n'],
]

describe('config loader properties: it loads, or it reports config errors', () => {
  test('the valid base config of the mutation property loads', async () => {
    const text = yamlOf(baseConfig(ws.fixtures))
    assert.ok(text !== undefined)
    const r = await ws.withDir({ 'gatehouse.yaml': text }, (dir) => checkLoad(dir, { twice: true }))
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors, null, 2))
    assert.equal(r.snapshot.listeners.length, 3)
    assert.deepEqual(r.secrets.sort(), ['Bearer otlp', 'a-hmac-secret-of-at-least-32-bytes!!', 'admin-token', 'client-secret'])
  })

  test('(a) any text or bytes as a .yaml file', async () => {
    await fc.assert(fc.asyncProperty(rawFileArb, async (content) => {
      await ws.withDir({ 'a.yaml': content }, (dir) => checkLoad(dir))
    }), params(400, RAW_EXAMPLES))
  })

  test('(b) generated documents (JSON values, any JS value, resource-shaped with each kind) stringified by yaml', async () => {
    await fc.assert(fc.asyncProperty(generatedDocsArb, fc.integer({ min: 1, max: 3 }), async (docs, fileCount) => {
      const files = filesOf(docs, fileCount)
      fc.pre(files !== undefined) // a value yaml itself cannot stringify
      await ws.withDir(files!, (dir) => checkLoad(dir))
    }), params(300))
  })

  test('(c) the valid base config with fields replaced, deleted, inserted, renamed, swapped or duplicated', async () => {
    const base = baseConfig(ws.fixtures)
    await fc.assert(fc.asyncProperty(mutationsArb, fc.integer({ min: 1, max: 3 }), async (mutations, fileCount) => {
      const files = filesOf(applyMutations(base, mutations), fileCount)
      fc.pre(files !== undefined)
      await ws.withDir(files!, (dir) => checkLoad(dir, { twice: true }))
    }), params(300))
  })
})
