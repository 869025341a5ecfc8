/**
 * Valid resources → the versioned Snapshot workers run on. Everything a worker would
 * otherwise work out per request is settled here: service references resolved, splits
 * merged, defaults filled, policies sorted, URLs split, header names lowercased.
 *
 * Only runs on input that passed every check; it does not re-validate.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import { POLICY_SCHEMAS } from '../worker/policies/schemas.js'
import { listenerName, normaliseCidr, parseAdminAddress, parseEndpointUrl, parseListenAddress } from './address.js'
import { DEFAULTS } from './defaults.js'
import type { ApiInstance, PolicyEntry } from './kinds/api-instance.js'
import type { ConfigurationSpec } from './kinds/configuration.js'
import type { Rule } from './kinds/common.js'
import type { Endpoint, ServiceSpec } from './kinds/service.js'
import { ruleSnap, serviceNameOf, splitGroups } from './routes.js'
import type {
  ClientTimeoutsSnap,
  ApiSnap, EndpointSnap, HostSnap, ListenerSnap, MetricsSnap, PolicySnap, RedisSnap, RouteSnap, ServiceSnap, Snapshot, TracingSnap,
} from './snapshot.js'
import type { Resources } from './validate.js'

export interface CompileOptions {
  /** Relative file paths in the config (TLS files, log directory) resolve against it. */
  baseDir: string
  /** Digest of the files the config references (policy files, TLS), part of the version. */
  fileDigest?: string
}

export function compile(r: Resources, opts: CompileOptions): Snapshot {
  const known = new Map(r.services.map((s) => [s.value.metadata.name, s.value.spec]))
  const services = new Map<string, ServiceSnap>()
  const listeners = new Map<string, ListenerSnap>()
  const hostSpec = r.configs[0]?.value.spec ?? {}

  for (const { value: api } of r.apis) {
    const addr = parseListenAddress(api.spec.address)
    if ('error' in addr) throw new Error(`unchecked address ${api.spec.address}`)
    const key = `${addr.host}\0${addr.port}`
    let listener = listeners.get(key)
    if (!listener) {
      listener = { host: addr.host, port: addr.port, tls: null, apis: [], timeouts: listenerTimeouts(hostSpec, addr) }
      listeners.set(key, listener)
    }
    const tls = api.spec.tls
    if (tls) {
      listener.tls = {
        certFile: path.resolve(opts.baseDir, tls.certFile),
        keyFile: path.resolve(opts.baseDir, tls.keyFile),
        ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
      }
    }
    // Only referenced services get a snapshot entry: each one costs pools and probes.
    for (const [serviceKey, entry] of Object.entries(api.spec.services)) {
      const name = serviceNameOf(api.metadata.name, serviceKey, entry)
      if (services.has(name)) continue
      const spec = entry.service !== undefined
        ? known.get(entry.service)!
        : { endpoints: entry.endpoints ?? [entry.address!] }
      services.set(name, serviceSnap(name, spec))
    }
    const bindings = r.bindings
      .filter((b) => b.value.spec.targetRef.name === api.metadata.name)
      .map((b) => policySnap(b.value.spec, `PolicyBinding ${b.value.metadata.name}`))
    listener.apis.push(apiSnap(api, addr.basePath, bindings))
  }

  for (const l of listeners.values()) {
    // Longest first so the worker's first prefix match is the most specific one.
    l.apis.sort((a, b) => b.basePath.length - a.basePath.length || (a.basePath < b.basePath ? -1 : 1))
  }
  const body = {
    host: hostSnap(hostSpec, opts),
    listeners: [...listeners.values()].sort((a, b) => a.port - b.port || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0)),
    services: Object.fromEntries([...services.entries()].sort(([a], [b]) => (a < b ? -1 : 1))),
  }
  const version = createHash('sha256').update(JSON.stringify(body)).update(opts.fileDigest ?? '').digest('hex').slice(0, 16)
  return deepFreeze({ version, ...body })
}

function apiSnap(api: ApiInstance, basePath: string, bindings: PolicySnap[]): ApiSnap {
  const name = api.metadata.name
  const routes: RouteSnap[] = []
  for (const g of splitGroups(api.spec)) {
    const first = g.members[0]!
    routes.push({
      id: `${name}/${first.serviceKey}#${first.index}`,
      rules: g.rules,
      // A 0% member is a route being drained: keep it in config, send it nothing.
      targets: g.members
        .filter((m) => m.route.weight !== 0)
        .map((m) => ({ service: serviceNameOf(name, m.serviceKey, api.spec.services[m.serviceKey]!), weight: m.route.weight ?? 100 })),
    })
  }
  const own = (api.spec.policies ?? []).map((p, i) => policySnap(p, `ApiInstance ${name} policies[${i}]`))
  return {
    name,
    basePath,
    maxRequestBodyBytes: api.spec.maxRequestBodyBytes ?? DEFAULTS.api.maxRequestBodyBytes,
    preserveHost: api.spec.preserveHost ?? DEFAULTS.api.preserveHost,
    routes,
    // Array#sort is stable: equal orders keep ApiInstance-then-binding declaration order.
    policies: [...own, ...bindings].sort((a, b) => a.order - b.order),
  }
}

function policySnap(p: Pick<PolicyEntry, 'policyRef' | 'order' | 'rules' | 'config'>, source: string): PolicySnap {
  const name = p.policyRef.name
  return {
    name,
    order: p.order ?? POLICY_SCHEMAS[name]?.order ?? DEFAULTS.policyOrder,
    source,
    rules: (p.rules ?? []).map((r: Rule) => ruleSnap(r)),
    config: p.config ?? {},
  }
}

function serviceSnap(name: string, spec: Partial<ServiceSpec> & { endpoints: Endpoint[] }): ServiceSnap {
  const D = DEFAULTS.service
  const passive = spec.healthChecks?.passive
  const active = spec.healthChecks?.active
  return {
    name,
    endpoints: spec.endpoints.map(endpointSnap),
    loadBalancing: spec.loadBalancing ?? D.loadBalancing,
    connectTimeoutMs: spec.timeouts?.connectMs ?? D.connectMs,
    responseTimeoutMs: spec.timeouts?.responseMs ?? D.responseMs,
    retries: spec.retries ?? D.retries,
    keepAliveTimeoutMs: spec.keepAliveTimeoutMs ?? D.keepAliveTimeoutMs,
    connectionsPerEndpoint: spec.connectionsPerEndpoint ?? D.connectionsPerEndpoint,
    maxResponseHeaderBytes: spec.maxResponseHeaderBytes ?? D.maxResponseHeaderBytes,
    maxResponseHeaderCount: spec.maxResponseHeaderCount ?? D.maxResponseHeaderCount,
    passiveHealth: {
      consecutiveFailures: passive?.consecutiveFailures ?? D.passive.consecutiveFailures,
      baseEjectionMs: passive?.baseEjectionMs ?? D.passive.baseEjectionMs,
      maxEjectionMs: passive?.maxEjectionMs ?? D.passive.maxEjectionMs,
    },
    activeHealth: active
      ? {
          path: active.path,
          intervalMs: active.intervalMs ?? D.active.intervalMs,
          timeoutMs: active.timeoutMs ?? D.active.timeoutMs,
          healthyThreshold: active.healthyThreshold ?? D.active.healthyThreshold,
          unhealthyThreshold: active.unhealthyThreshold ?? D.active.unhealthyThreshold,
          expectedStatus: active.expectedStatus ? [active.expectedStatus[0], active.expectedStatus[1]] : [...D.active.expectedStatus],
        }
      : null,
  }
}

function endpointSnap(ep: Endpoint): EndpointSnap {
  const url = typeof ep === 'string' ? ep : ep.url
  const parsed = parseEndpointUrl(url)
  if ('error' in parsed) throw new Error(`unchecked endpoint ${url}`)
  return { origin: parsed.origin, pathPrefix: parsed.pathPrefix, weight: typeof ep === 'string' ? DEFAULTS.service.endpointWeight : ep.weight ?? DEFAULTS.service.endpointWeight }
}

function listenerTimeouts(c: ConfigurationSpec, addr: { host: string; port: number }): ClientTimeoutsSnap {
  const H = DEFAULTS.host.timeouts
  const own = c.listeners?.[listenerName(addr)]?.timeouts
  return {
    bodyIdleTimeoutMs: own?.bodyIdleTimeoutMs ?? c.timeouts?.bodyIdleTimeoutMs ?? H.bodyIdleTimeoutMs,
    sendTimeoutMs: own?.sendTimeoutMs ?? c.timeouts?.sendTimeoutMs ?? H.sendTimeoutMs,
  }
}

function hostSnap(c: ConfigurationSpec, opts: CompileOptions): HostSnap {
  const H = DEFAULTS.host
  const admin = parseAdminAddress(c.admin?.address ?? H.adminAddress)
  if ('error' in admin) throw new Error('unchecked admin address')
  return {
    workers: c.workers ?? H.workers,
    admin: { host: admin.host, port: admin.port, token: c.admin?.token ?? null },
    drainTimeoutMs: c.drainTimeoutMs ?? H.drainTimeoutMs,
    heartbeatIntervalMs: c.heartbeat?.intervalMs ?? H.heartbeatIntervalMs,
    heartbeatMisses: c.heartbeat?.misses ?? H.heartbeatMisses,
    watch: c.watch ?? H.watch,
    logLevel: c.logging?.runtimeLogs?.logLevel ?? H.logLevel,
    accessLogs: c.logging?.accessLogs?.enabled ?? H.accessLogs,
    accessLogQuery: c.logging?.accessLogs?.includeQuery ?? H.accessLogQuery,
    logDirectory: c.logging?.directory !== undefined ? path.resolve(opts.baseDir, c.logging.directory) : null,
    // Canonical "addr/prefix" so the worker parses one form only.
    trustedProxies: (c.trustedProxies ?? []).map((s) => normaliseCidr(s)!),
    limits: {
      maxUrlBytes: c.limits?.maxUrlBytes ?? H.limits.maxUrlBytes,
      maxHeaderBytes: c.limits?.maxHeaderBytes ?? H.limits.maxHeaderBytes,
      maxHeaderCount: c.limits?.maxHeaderCount ?? H.limits.maxHeaderCount,
      requestBufferBytes: c.limits?.requestBufferBytes ?? H.limits.requestBufferBytes,
      responseBufferBytes: c.limits?.responseBufferBytes ?? H.limits.responseBufferBytes,
      responseBufferTotalBytes: c.limits?.responseBufferTotalBytes ?? H.limits.responseBufferTotalBytes,
    },
    overload: {
      maxRequestsInFlight: c.overload?.maxRequestsInFlight ?? H.overload.maxRequestsInFlight,
      maxEventLoopLagMs: c.overload?.maxEventLoopLagMs ?? H.overload.maxEventLoopLagMs,
      maxConnections: c.overload?.maxConnections ?? H.overload.maxConnections,
    },
    redis: redisSnap(c.sharedStorage?.redis),
    metrics: metricsSnap(c.metrics),
    tracing: tracingSnap(c.tracing),
  }
}

function tracingSnap(t: ConfigurationSpec['tracing']): TracingSnap {
  const T = DEFAULTS.host.tracing
  let endpoint = t?.endpoint ?? T.endpoint
  // Like OTEL_EXPORTER_OTLP_ENDPOINT: a bare origin gets the traces path.
  if (/^https?:\/\/[^/]+\/?$/.test(endpoint)) endpoint = endpoint.replace(/\/?$/, '/v1/traces')
  return {
    enabled: t?.enabled ?? t !== undefined,
    endpoint,
    sampling: t?.sampling ?? T.sampling,
    serviceName: t?.serviceName ?? T.serviceName,
    resourceAttributes: t?.resourceAttributes ?? {},
    headers: t?.headers ?? {},
  }
}

function metricsSnap(m: ConfigurationSpec['metrics']): MetricsSnap {
  let address: MetricsSnap['address'] = null
  if (m?.address !== undefined) {
    const a = parseAdminAddress(m.address)
    if ('error' in a) throw new Error('unchecked metrics address')
    address = a
  }
  return { enabled: m?.enabled ?? DEFAULTS.host.metrics.enabled, address }
}

function hostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':')
  const host = s.slice(0, i)
  return [host.startsWith('[') ? host.slice(1, -1) : host, Number(s.slice(i + 1))]
}

function redisSnap(r: NonNullable<ConfigurationSpec['sharedStorage']>['redis']): RedisSnap | null {
  if (r === undefined) return null
  const sentinel = r.sentinel
  return {
    hosts: sentinel !== undefined ? sentinel.addresses.map(hostPort) : [hostPort(r.address!)],
    sentinelName: sentinel?.name ?? null,
    sentinelPassword: sentinel?.password ?? null,
    username: r.username ?? null,
    password: r.password ?? null,
    db: r.db ?? 0,
    tls: r.tls ?? false,
    commandTimeoutMs: r.commandTimeoutMs ?? 250,
  }
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}
