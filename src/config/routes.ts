/**
 * Route helpers shared by the checks and the compiler: rule normalisation and split
 * groups (routes of one ApiInstance whose rule lists are identical share traffic by
 * weight).
 *
 * @module
 */
import type { RuleSnap } from './snapshot.js'
import type { ApiInstanceSpec, Route } from './kinds/api-instance.js'
import type { Rule } from './kinds/common.js'

export interface RouteMember {
  serviceKey: string
  index: number
  route: Route
}

export interface SplitGroup {
  rules: RuleSnap[]
  members: RouteMember[]
}

/** Header names lowercased once here so the worker compares against lowercase names only. */
export function ruleSnap(r: Rule): RuleSnap {
  const out: RuleSnap = {}
  if (r.path !== undefined) out.path = r.path
  if (r.methods !== undefined) out.methods = r.methods
  if (r.host !== undefined) out.host = r.host
  if (r.headers !== undefined) {
    const names = Object.keys(r.headers).sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1)
    out.headers = Object.fromEntries(names.map((n) => [n.toLowerCase(), r.headers![n]!]))
  }
  return out
}

/** Groups in declaration order (services in map order, routes in list order). */
export function splitGroups(spec: ApiInstanceSpec): SplitGroup[] {
  const groups = new Map<string, SplitGroup>()
  for (const [serviceKey, entry] of Object.entries(spec.services)) {
    entry.routes.forEach((route, index) => {
      const rules = (route.rules ?? []).map(ruleSnap)
      // Key order is fixed by ruleSnap, so JSON is a canonical form.
      const key = JSON.stringify(rules)
      let g = groups.get(key)
      if (!g) {
        g = { rules, members: [] }
        groups.set(key, g)
      }
      g.members.push({ serviceKey, index, route })
    })
  }
  return [...groups.values()]
}

/** Snapshot service name for an entry: the referenced Service, or a synthetic one per inline entry. */
export function serviceNameOf(api: string, serviceKey: string, entry: { service?: string | undefined }): string {
  return entry.service ?? `${api}.${serviceKey}`
}
