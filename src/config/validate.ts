/**
 * Per-document checks: envelope (apiVersion, kind), the kind's schema, and each policy's
 * config against that policy's own schema. Cross-resource rules live in cross-check.ts.
 *
 * @module
 */
import { POLICY_SCHEMAS } from '../worker/policies/schemas.js'
import { validateAt } from './ajv.js'
import type { ConfigError, DocPath } from './errors.js'
import { API_VERSION, isKindName, KINDS, type KindName } from './kinds/index.js'
import type { ApiInstance } from './kinds/api-instance.js'
import type { Configuration } from './kinds/configuration.js'
import type { PolicyBinding } from './kinds/policy-binding.js'
import type { Service } from './kinds/service.js'
import { errorAt, type SourceDoc } from './yaml-source.js'

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
  let data: unknown
  try {
    // Bounded alias expansion: a "billion laughs" document must not take the primary down.
    data = src.doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    errors.push(errorAt(src, [], (err as Error).message))
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
