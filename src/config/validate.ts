/**
 * Per-document checks: envelope (apiVersion, kind), the kind's schema, and each policy's
 * config against that policy's own schema. Cross-resource rules live in cross-check.ts.
 *
 * @module
 */
import { isMap, isScalar, isSeq, type Node } from 'yaml'
import { POLICY_SCHEMAS } from '../worker/policies/schemas.js'
import { validateAt } from './ajv.js'
import { formatPath, type ConfigError, type DocPath } from './errors.js'
import { API_VERSION, isKindName, KINDS, type KindName } from './kinds/index.js'
import type { ApiInstance } from './kinds/api-instance.js'
import type { Configuration } from './kinds/configuration.js'
import type { PolicyBinding } from './kinds/policy-binding.js'
import type { Service } from './kinds/service.js'
import { errorAt, stackExhausted, type SourceDoc } from './yaml-source.js'

export interface Res<T> {
  src: SourceDoc
  value: T
}

/** Every resource with a readable kind and name, valid or not: references to it resolve. */
export interface Named {
  kind: KindName
  name: string
  src: SourceDoc
}

export interface Resources {
  named: Named[]
  apis: Res<ApiInstance>[]
  services: Res<Service>[]
  bindings: Res<PolicyBinding>[]
  configs: Res<Configuration>[]
}

export function emptyResources(): Resources {
  return { named: [], apis: [], services: [], bindings: [], configs: [] }
}

/**
 * Validates one document, appending it to `into` (when valid) and errors to `errors`.
 * `unresolved` holds the paths of values whose substitution failed: they still read
 * "${env:X}", so schema complaints about them would only be noise, and the resource is
 * kept out of the cross-resource checks for the same reason.
 */
export function validateDocument(src: SourceDoc, into: Resources, errors: ConfigError[], unresolved: ReadonlySet<string> = new Set()): void {
  const bad = complexKey(src.doc.contents, [])
  if (bad !== null) {
    // toJS would turn the key into a string like "[ a, b ]" (and warn on stderr).
    errors.push({ file: src.file, ...src.lines.linePos(bad.offset), path: formatPath(bad.path), message: 'a key must be a scalar, not a list or mapping' })
    return
  }
  let data: unknown
  try {
    // Bounded alias expansion: a "billion laughs" document must not take the primary down.
    data = src.doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    errors.push(errorAt(src, [], stackExhausted(err) ? 'collections nested too deeply' : (err as Error).message))
    return
  }
  const odd = firstNonPlain(data)
  if (odd !== null) {
    errors.push(errorAt(src, odd.path, odd.message))
    return
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    errors.push(errorAt(src, [], 'a resource must be a mapping with apiVersion, kind, metadata and spec'))
    return
  }
  const doc = data as Record<string, unknown>
  if (doc.apiVersion === undefined) {
    errors.push(errorAt(src, [], `missing apiVersion (must be "${API_VERSION}")`))
    return
  }
  if (doc.apiVersion !== API_VERSION) {
    errors.push(errorAt(src, ['apiVersion'], `must be "${API_VERSION}", got ${JSON.stringify(doc.apiVersion)}`))
    return
  }
  if (!isKindName(doc.kind)) {
    const known = Object.keys(KINDS).join(', ')
    const msg = doc.kind === undefined ? `missing kind (one of: ${known})` : `unknown kind ${JSON.stringify(doc.kind)} (one of: ${known})`
    errors.push(errorAt(src, doc.kind === undefined ? [] : ['kind'], msg))
    return
  }
  const kind = doc.kind
  const name = (doc.metadata as { name?: unknown } | undefined)?.name
  if (typeof name === 'string') into.named.push({ kind, name, src })

  const found = [...validateAt(src, [], KINDS[kind], data), ...validatePolicies(src, kind, doc)]
  errors.push(...found.filter((e) => !unresolved.has(e.path)))
  if (found.length > 0 || unresolved.size > 0) return

  switch (kind) {
    case 'ApiInstance': into.apis.push({ src, value: data as ApiInstance }); break
    case 'Service': into.services.push({ src, value: data as Service }); break
    case 'PolicyBinding': into.bindings.push({ src, value: data as PolicyBinding }); break
    case 'Configuration': into.configs.push({ src, value: data as Configuration }); break
  }
}

/**
 * Runs on the raw document even when its own schema failed, so a policy typo is
 * reported in the same pass as a typo elsewhere in the resource.
 */
function validatePolicies(src: SourceDoc, kind: KindName, doc: Record<string, unknown>): ConfigError[] {
  const spec = doc.spec as Record<string, unknown> | undefined
  if (spec === null || typeof spec !== 'object') return []
  if (kind === 'PolicyBinding') return validatePolicy(src, ['spec'], spec)
  if (kind !== 'ApiInstance' || !Array.isArray(spec.policies)) return []
  return spec.policies.flatMap((p, i) => (p !== null && typeof p === 'object' ? validatePolicy(src, ['spec', 'policies', i], p as Record<string, unknown>) : []))
}

function validatePolicy(src: SourceDoc, at: DocPath, entry: Record<string, unknown>): ConfigError[] {
  const name = (entry.policyRef as { name?: unknown } | undefined)?.name
  if (typeof name !== 'string') return []
  const policy = Object.hasOwn(POLICY_SCHEMAS, name) ? POLICY_SCHEMAS[name] : undefined
  if (!policy) {
    const known = Object.keys(POLICY_SCHEMAS).sort().join(', ')
    return [errorAt(src, [...at, 'policyRef', 'name'], `unknown policy ${JSON.stringify(name)} (known: ${known})`)]
  }
  // An omitted config means "all defaults"; the policy schema decides whether that is enough.
  if (entry.config === undefined) entry.config = {}
  return validateAt(src, [...at, 'config'], policy.schema, entry.config, true)
}

/**
 * The first value of a document that is not plain data (mapping, list, string, number,
 * boolean, null), or null. YAML tags become other JS values: `!!omap`/`!!pairs` a Map,
 * `!!set` a Set, `!!timestamp` a Date, `!!binary` a Uint8Array (and plain scalars under
 * `%YAML 1.1` too). Schemas see a Map as an empty mapping, so a policy `config: !!omap
 * [...]` would load with every option silently dropped, and the Map would not survive the
 * JSON trip to the workers. An alias inside its own anchor (`a: &x [*x]`) makes a cycle
 * that no message or snapshot can be built from.
 */
function firstNonPlain(root: unknown): { path: DocPath; message: string } | null {
  const onPath = new Set<object>()
  const checked = new Set<object>()
  const visit = (v: unknown, at: (string | number)[]): { path: DocPath; message: string } | null => {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return null
    if (typeof v !== 'object') return { path: at, message: `must be a plain mapping, list or scalar, got ${typeof v}` }
    if (onPath.has(v)) return { path: at, message: 'an alias must not refer to a node that contains it' }
    if (checked.has(v)) return null // an alias to a node already checked
    if (!Array.isArray(v)) {
      const proto = Object.getPrototypeOf(v) as unknown
      if (proto !== Object.prototype && proto !== null) return { path: at, message: `must be a plain mapping, list or scalar, got ${tagged(v)}` }
    }
    onPath.add(v)
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v)
    for (const [k, x] of entries) {
      const found = visit(x, [...at, k])
      if (found !== null) return found
    }
    onPath.delete(v)
    checked.add(v)
    return null
  }
  return visit(root, [])
}

/** The first mapping key that is a list or mapping (`? [a, b]: x`, `{[a]: x}`), with its offset. */
function complexKey(node: unknown, at: (string | number)[]): { path: DocPath; offset: number } | null {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (pair.key !== null && !isScalar(pair.key)) return { path: at, offset: (pair.key as Node).range?.[0] ?? 0 }
      const found = complexKey(pair.value, [...at, isScalar(pair.key) ? String(pair.key.value) : ''])
      if (found !== null) return found
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) {
      const found = complexKey(node.items[i], [...at, i])
      if (found !== null) return found
    }
  }
  return null
}

function tagged(v: object): string {
  if (v instanceof Map) return 'an ordered map (!!omap, !!pairs)'
  if (v instanceof Set) return 'a set (!!set)'
  if (v instanceof Date) return 'a timestamp (!!timestamp)'
  if (v instanceof Uint8Array) return 'binary data (!!binary)'
  return `a ${v.constructor?.name ?? 'tagged value'}`
}
