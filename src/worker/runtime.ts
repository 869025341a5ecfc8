/**
 * A Runtime is a snapshot made executable: regexes compiled, chains built, services
 * bound to pools. Workers build the next one beside the current one and swap a single
 * reference; exchanges keep the one they started with.
 *
 * @module
 */
import { BlockList, isIPv6 } from 'node:net'
import type { ApiSnap, ListenerSnap, RouteSnap, Snapshot, LimitsSnap } from '../config/snapshot.js'
import { compileChain, type Chain } from './chain.js'
import { compileRule, matchRule, type RuleMatcher } from './rules.js'
import type { ServiceRuntime, UpstreamRegistry } from './upstream.js'
import type { Exchange } from './exchange.js'
import type { WorkerServices } from './policies/types.js'

export interface RouteRuntime {
  readonly id: string
  readonly matchers: readonly RuleMatcher[]
  readonly services: readonly ServiceRuntime[]
  /** Cumulative weights, same order as services; null when there is one target. */
  readonly cumulative: readonly number[] | null
  readonly totalWeight: number
}

export interface ApiRuntime {
  readonly name: string
  readonly basePath: string
  readonly maxRequestBodyBytes: number
  readonly preserveHost: boolean
  readonly routes: readonly RouteRuntime[]
  readonly chain: Chain
}

export interface ListenerRuntime {
  readonly key: string
  readonly host: string
  readonly port: number
  readonly proto: 'http' | 'https'
  readonly apis: readonly ApiRuntime[]
  readonly bodyIdleTimeoutMs: number
  readonly sendTimeoutMs: number
}

export interface Runtime {
  readonly version: string
  readonly snapshot: Snapshot
  /** By "host:port". */
  readonly listeners: ReadonlyMap<string, ListenerRuntime>
  readonly services: ReadonlyMap<string, ServiceRuntime>
  readonly limits: LimitsSnap
  /** Null when no proxy is trusted (the common case skips the lookup). */
  readonly trustedProxies: BlockList | null
}

export function listenerKey(l: { host: string; port: number }): string {
  return `${l.host}:${l.port}`
}

function buildRoute(r: RouteSnap, services: ReadonlyMap<string, ServiceRuntime>): RouteRuntime {
  const svcs = r.targets.map((t) => {
    const s = services.get(t.service)
    if (s === undefined) throw new Error(`route ${r.id}: unknown service ${t.service}`)
    return s
  })
  let acc = 0
  const cumulative = r.targets.map((t) => (acc += t.weight))
  return {
    id: r.id,
    matchers: r.rules.map(compileRule),
    services: svcs,
    cumulative: svcs.length > 1 ? cumulative : null,
    totalWeight: acc,
  }
}

function buildApi(a: ApiSnap, services: ReadonlyMap<string, ServiceRuntime>, ws: WorkerServices): ApiRuntime {
  return {
    name: a.name,
    basePath: a.basePath,
    maxRequestBodyBytes: a.maxRequestBodyBytes,
    preserveHost: a.preserveHost,
    routes: a.routes.map((r) => buildRoute(r, services)),
    chain: compileChain(a.name, a.policies, ws),
  }
}

function buildListener(l: ListenerSnap, services: ReadonlyMap<string, ServiceRuntime>, ws: WorkerServices): ListenerRuntime {
  return {
    key: listenerKey(l),
    host: l.host,
    port: l.port,
    proto: l.tls === null ? 'http' : 'https',
    apis: l.apis.map((a) => buildApi(a, services, ws)),
    bodyIdleTimeoutMs: l.timeouts.bodyIdleTimeoutMs,
    sendTimeoutMs: l.timeouts.sendTimeoutMs,
  }
}

/** Builds a runtime beside the live one; `commit` once it serves, `discard` if it is rejected. */
export function buildRuntime(snapshot: Snapshot, upstreams: UpstreamRegistry, ws: WorkerServices): { runtime: Runtime; commit(): void; discard(): void } {
  const prepared = upstreams.prepare(snapshot.services)
  try {
    return { runtime: compileRuntime(snapshot, prepared.services, ws), commit: prepared.commit, discard: prepared.discard }
  } catch (err) {
    prepared.discard()
    throw err
  }
}

function compileRuntime(snapshot: Snapshot, services: ReadonlyMap<string, ServiceRuntime>, ws: WorkerServices): Runtime {
  const listeners = new Map<string, ListenerRuntime>()
  for (const l of snapshot.listeners) listeners.set(listenerKey(l), buildListener(l, services, ws))
  let trusted: BlockList | null = null
  if (snapshot.host.trustedProxies.length > 0) {
    trusted = new BlockList()
    for (const cidr of snapshot.host.trustedProxies) {
      const [addr, bits] = cidr.split('/') as [string, string | undefined]
      const type = isIPv6(addr) ? 'ipv6' : 'ipv4'
      if (bits === undefined) trusted.addAddress(addr, type)
      else trusted.addSubnet(addr, Number(bits), type)
    }
  }
  return { version: snapshot.version, snapshot, listeners, services, limits: snapshot.host.limits, trustedProxies: trusted }
}

/** Longest base path first (the snapshot's order), segment-aware prefix match. */
export function findApi(l: ListenerRuntime, url: string): ApiRuntime | null {
  const apis = l.apis
  for (let i = 0; i < apis.length; i++) {
    const a = apis[i]!
    const b = a.basePath
    if (b === '' || (url.startsWith(b) && (url.length === b.length || url.charCodeAt(b.length) === 47 /* / */))) return a
  }
  return null
}

/** First route with a matching rule; sets ex.route/service/upstreamPath. False = no route. */
export function selectRoute(api: ApiRuntime, ex: Exchange): boolean {
  const routes = api.routes
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!
    let rewritten: string | null = null
    if (r.matchers.length === 0) rewritten = ex.path
    else {
      for (let k = 0; k < r.matchers.length && rewritten === null; k++) rewritten = matchRule(r.matchers[k]!, ex)
    }
    if (rewritten === null) continue
    ex.route = r
    // A capture like /(.*) drops the slash; an upstream path always starts with one.
    ex.upstreamPath = rewritten.charCodeAt(0) === 47 /* / */ ? rewritten : '/' + rewritten
    if (r.cumulative === null) ex.service = r.services[0]!
    else {
      const x = Math.random() * r.totalWeight
      let k = 0
      while (k < r.cumulative.length - 1 && x >= r.cumulative[k]!) k++
      ex.service = r.services[k]!
    }
    return true
  }
  return false
}
