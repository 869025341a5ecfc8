/**
 * Rules that span documents or need more than a schema: references, duplicates, port
 * sharing, split weights, URLs. Each error points at the offending value; when another
 * resource is involved, the message says where that one is.
 *
 * @module
 */
import {
  basePathsOverlap, isWildcardHost, listenerName, parseAdminAddress, parseEndpointUrl, parseListenAddress, type ListenAddress,
} from './address.js'
import { DEFAULTS } from './defaults.js'
import type { ConfigError, DocPath } from './errors.js'
import type { Endpoint, Service } from './kinds/service.js'
import type { Rule } from './kinds/common.js'
import type { ApiInstance } from './kinds/api-instance.js'
import { serviceNameOf, splitGroups } from './routes.js'
import type { Res, Resources } from './validate.js'
import { errorAt, where, type SourceDoc } from './yaml-source.js'

export function crossCheck(r: Resources): ConfigError[] {
  const errors: ConfigError[] = []
  checkNames(r, errors)
  for (const s of r.services) checkService(s, errors)
  const serviceNames = new Set(r.named.filter((n) => n.kind === 'Service').map((n) => n.name))
  const listens: Listen[] = []
  for (const a of r.apis) {
    const l = checkApi(a, serviceNames, errors)
    if (l) listens.push(l)
  }
  checkPorts(listens, errors)
  for (const c of r.configs) checkListenerKeys(c.src, c.value.spec.listeners, listens, errors)
  const apiNames = new Set(r.named.filter((n) => n.kind === 'ApiInstance').map((n) => n.name))
  for (const b of r.bindings) {
    if (!apiNames.has(b.value.spec.targetRef.name)) {
      errors.push(errorAt(b.src, ['spec', 'targetRef', 'name'], `ApiInstance ${JSON.stringify(b.value.spec.targetRef.name)} does not exist`))
    }
  }
  for (const c of r.configs) checkAdmin(c.src, c.value.spec.admin?.address ?? DEFAULTS.host.adminAddress, listens, errors)
  for (const c of r.configs) {
    const redis = c.value.spec.sharedStorage?.redis
    if (redis !== undefined && redis.address === undefined && redis.sentinel === undefined) {
      errors.push(errorAt(c.src, ['spec', 'sharedStorage', 'redis'], 'needs an address or a sentinel'))
    }
  }
  if (!r.named.some((n) => n.kind === 'Configuration')) checkDefaultAdmin(listens, errors)
  return errors
}

function checkNames(r: Resources, errors: ConfigError[]): void {
  const first = new Map<string, SourceDoc>()
  let config: SourceDoc | null = null
  for (const n of r.named) {
    if (n.kind === 'Configuration') {
      if (config) errors.push(errorAt(n.src, ['kind'], `only one Configuration is allowed (another is at ${where(config, ['kind'])})`))
      else config = n.src
      continue
    }
    const key = `${n.kind}\0${n.name}`
    const prev = first.get(key)
    if (prev) errors.push(errorAt(n.src, ['metadata', 'name'], `duplicate ${n.kind} name ${JSON.stringify(n.name)} (first defined at ${where(prev, ['metadata', 'name'])})`))
    else first.set(key, n.src)
  }
}

function checkService({ src, value }: Res<Service>, errors: ConfigError[]): void {
  const spec = value.spec
  checkEndpoints(src, ['spec', 'endpoints'], spec.endpoints, errors)
  const passive = spec.healthChecks?.passive
  const D = DEFAULTS.service
  if (passive && (passive.baseEjectionMs ?? D.passive.baseEjectionMs) > (passive.maxEjectionMs ?? D.passive.maxEjectionMs)) {
    errors.push(errorAt(src, ['spec', 'healthChecks', 'passive', 'baseEjectionMs'], 'must not exceed maxEjectionMs'))
  }
  const active = spec.healthChecks?.active
  if (active?.expectedStatus && active.expectedStatus[0] > active.expectedStatus[1]) {
    errors.push(errorAt(src, ['spec', 'healthChecks', 'active', 'expectedStatus'], 'must be [min, max] with min <= max'))
  }
  if (active && (active.timeoutMs ?? D.active.timeoutMs) > (active.intervalMs ?? D.active.intervalMs)) {
    errors.push(errorAt(src, ['spec', 'healthChecks', 'active', 'timeoutMs'], 'must not exceed intervalMs'))
  }
}

function checkEndpoints(src: SourceDoc, at: DocPath, endpoints: readonly Endpoint[], errors: ConfigError[]): void {
  const seen = new Map<string, number>()
  endpoints.forEach((ep, i) => {
    const url = typeof ep === 'string' ? ep : ep.url
    const path = typeof ep === 'string' ? [...at, i] : [...at, i, 'url']
    const parsed = parseEndpointUrl(url)
    if ('error' in parsed) {
      errors.push(errorAt(src, path, parsed.error))
      return
    }
    const key = parsed.origin + parsed.pathPrefix
    const prev = seen.get(key)
    if (prev !== undefined) errors.push(errorAt(src, path, `duplicate endpoint ${key} (also at index ${prev})`))
    else seen.set(key, i)
  })
}

interface Listen {
  src: SourceDoc
  name: string
  addr: ListenAddress
  hasTls: boolean
}

function checkApi({ src, value }: Res<ApiInstance>, serviceNames: Set<string>, errors: ConfigError[]): Listen | null {
  const spec = value.spec
  const name = value.metadata.name
  for (const [key, entry] of Object.entries(spec.services)) {
    const at = ['spec', 'services', key]
    const forms = (['service', 'address', 'endpoints'] as const).filter((f) => entry[f] !== undefined)
    if (forms.length !== 1) {
      const msg = forms.length === 0 ? 'needs one of service, address or endpoints' : `service, address and endpoints are exclusive (got ${forms.join(' and ')})`
      errors.push(errorAt(src, at, msg))
      continue
    }
    if (entry.service !== undefined) {
      if (!serviceNames.has(entry.service)) errors.push(errorAt(src, [...at, 'service'], `Service ${JSON.stringify(entry.service)} does not exist`))
      continue
    }
    const synthetic = serviceNameOf(name, key, entry)
    if (serviceNames.has(synthetic)) {
      errors.push(errorAt(src, at, `inline service would be named ${JSON.stringify(synthetic)}, which is also a Service name`))
    }
    if (entry.address !== undefined) {
      const p = parseEndpointUrl(entry.address)
      if ('error' in p) errors.push(errorAt(src, [...at, 'address'], p.error))
    }
    if (entry.endpoints !== undefined) checkEndpoints(src, [...at, 'endpoints'], entry.endpoints, errors)
  }
  checkSplits(src, spec, errors)
  spec.policies?.forEach((p, i) => checkRules(src, ['spec', 'policies', i, 'rules'], p.rules, errors))
  for (const [key, entry] of Object.entries(spec.services)) {
    entry.routes.forEach((r, i) => checkRules(src, ['spec', 'services', key, 'routes', i, 'rules'], r.rules, errors))
  }

  const addr = parseListenAddress(spec.address)
  if ('error' in addr) {
    errors.push(errorAt(src, ['spec', 'address'], addr.error))
    return null
  }
  if (spec.tls && addr.scheme === 'http') errors.push(errorAt(src, ['spec', 'tls'], 'tls needs an https:// address'))
  return { src, name, addr, hasTls: spec.tls !== undefined }
}

function checkSplits(src: SourceDoc, spec: ApiInstance['spec'], errors: ConfigError[]): void {
  for (const g of splitGroups(spec)) {
    const label = (m: { serviceKey: string; index: number }) => `${m.serviceKey} routes[${m.index}]`
    const routePath = (m: { serviceKey: string; index: number }) => ['spec', 'services', m.serviceKey, 'routes', m.index]
    if (g.members.length > 1) {
      const missing = g.members.filter((m) => m.route.weight === undefined)
      for (const m of missing) {
        const others = g.members.filter((o) => o !== m).map(label).join(', ')
        errors.push(errorAt(src, routePath(m), `weight is required: same rules as ${others} (a weighted split)`))
      }
      if (missing.length > 0) continue
    }
    const weighted = g.members.filter((m) => m.route.weight !== undefined)
    if (weighted.length === 0) continue
    const sum = weighted.reduce((n, m) => n + m.route.weight!, 0)
    if (sum !== 100) {
      const parts = weighted.map((m) => `${label(m)}: ${m.route.weight}`).join(', ')
      const what = g.members.length > 1 ? 'weights of routes with identical rules must add up to 100' : 'the weight of a route without a split must be 100'
      errors.push(errorAt(src, [...routePath(weighted[0]!), 'weight'], `${what}, got ${sum} (${parts})`))
    }
  }
}

/** Header names are case-insensitive: two spellings of one name would silently merge. */
function checkRules(src: SourceDoc, at: DocPath, rules: readonly Rule[] | undefined, errors: ConfigError[]): void {
  rules?.forEach((rule, i) => {
    const seen = new Set<string>()
    for (const h of Object.keys(rule.headers ?? {})) {
      const lower = h.toLowerCase()
      if (seen.has(lower)) errors.push(errorAt(src, [...at, i, 'headers', h], `duplicate header ${lower} (header names are case-insensitive)`, true))
      seen.add(lower)
    }
  })
}

/** Configuration.listeners keys must name a listener some ApiInstance opens. */
function checkListenerKeys(src: SourceDoc, keyed: Record<string, unknown> | undefined, listens: Listen[], errors: ConfigError[]): void {
  if (keyed === undefined) return
  const known = new Set(listens.map((l) => listenerName(l.addr)))
  for (const key of Object.keys(keyed)) {
    const [, host, port] = /^\[?(.*?)\]?:(\d+)$/.exec(key) ?? []
    if (!known.has(listenerName({ host: host ?? key, port: Number(port) }))) {
      errors.push(errorAt(src, ['spec', 'listeners', key], `no ApiInstance listens on ${key} (listeners: ${[...known].join(', ') || 'none'})`))
    }
  }
}

function checkPorts(listens: Listen[], errors: ConfigError[]): void {
  const byPort = new Map<number, Listen[]>()
  for (const l of listens) byPort.set(l.addr.port, [...(byPort.get(l.addr.port) ?? []), l])
  for (const [port, list] of byPort) {
    const first = list[0]!
    for (const l of list.slice(1)) {
      if (l.addr.scheme !== first.addr.scheme) {
        errors.push(errorAt(l.src, ['spec', 'address'], `port ${port} already serves ${first.addr.scheme} (ApiInstance ${first.name} at ${where(first.src, ['spec', 'address'])}); http and https cannot share a port`))
      } else if (l.addr.host !== first.addr.host && (isWildcardHost(l.addr.host) || isWildcardHost(first.addr.host))) {
        errors.push(errorAt(l.src, ['spec', 'address'], `port ${port} is already bound to ${first.addr.host} (ApiInstance ${first.name} at ${where(first.src, ['spec', 'address'])}); a wildcard address cannot share a port with another address`))
      }
    }
    if (first.addr.scheme === 'https') {
      const withTls = list.filter((l) => l.hasTls)
      if (withTls.length === 0) errors.push(errorAt(first.src, ['spec', 'address'], `https on port ${port} needs tls on one ApiInstance of that port`))
      for (const l of withTls.slice(1)) {
        errors.push(errorAt(l.src, ['spec', 'tls'], `TLS for port ${port} is already configured by ApiInstance ${withTls[0]!.name} (${where(withTls[0]!.src, ['spec', 'tls'])})`))
      }
    }
    for (let i = 1; i < list.length; i++) {
      const l = list[i]!
      const clash = list.slice(0, i).find((o) => o.addr.host === l.addr.host && basePathsOverlap(o.addr.basePath, l.addr.basePath))
      if (clash) {
        const show = (p: string) => JSON.stringify(p === '' ? '/' : p)
        errors.push(errorAt(l.src, ['spec', 'address'], `base path ${show(l.addr.basePath)} overlaps ${show(clash.addr.basePath)} of ApiInstance ${clash.name} on port ${port} (${where(clash.src, ['spec', 'address'])})`))
      }
    }
  }
}

function checkAdmin(src: SourceDoc, address: string, listens: Listen[], errors: ConfigError[]): void {
  const at = ['spec', 'admin', 'address']
  const admin = parseAdminAddress(address)
  if ('error' in admin) {
    errors.push(errorAt(src, at, admin.error))
    return
  }
  const clash = listens.find((l) => l.addr.port === admin.port &&
    (l.addr.host === admin.host || isWildcardHost(l.addr.host) || isWildcardHost(admin.host)))
  if (clash) errors.push(errorAt(src, at, `port ${admin.port} is also used by ApiInstance ${clash.name} (${where(clash.src, ['spec', 'address'])})`))
}

/** Without a Configuration the admin server still binds its default address. */
function checkDefaultAdmin(listens: Listen[], errors: ConfigError[]): void {
  const admin = parseAdminAddress(DEFAULTS.host.adminAddress) as { host: string; port: number }
  for (const l of listens) {
    if (l.addr.port === admin.port && (l.addr.host === admin.host || isWildcardHost(l.addr.host))) {
      errors.push(errorAt(l.src, ['spec', 'address'], `port ${admin.port} is the admin port (${DEFAULTS.host.adminAddress}); choose another port or set admin.address in a Configuration`))
    }
  }
}
