/**
 * Request rules (path, methods, host, headers), compiled once per snapshot into anchored
 * RegExps. Shared by routes and by policy rules, so both mean the same thing.
 *
 * @module
 */
import type { RuleSnap } from '../config/snapshot.js'
import type { HeaderList } from './headers.js'
import { getHeader } from './headers.js'

export interface RuleMatcher {
  readonly path: RegExp | null
  readonly methods: RegExp | null
  readonly host: RegExp | null
  readonly headers: ReadonlyArray<readonly [string, RegExp]> | null
}

function anchored(src: string | undefined, flags = ''): RegExp | null {
  return src === undefined ? null : new RegExp(`^(?:${src})$`, flags)
}

export function compileRule(r: RuleSnap): RuleMatcher {
  return {
    path: anchored(r.path),
    // Methods are tokens; case-insensitive so "get|post" in a config still means GET|POST.
    methods: anchored(r.methods, 'i'),
    host: anchored(r.host, 'i'),
    headers: r.headers === undefined ? null
      : Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), new RegExp(`^(?:${v})$`)] as const),
  }
}

/** What a rule sees of a request: all copied out of uWS before routing. */
export interface RuleInput {
  method: string
  /** Host header without port, lowercase. */
  hostname: string
  headers: HeaderList
  /** Path after the base path was removed; "/" at least. */
  path: string
}

/**
 * Tests one rule. Returns null when it does not match; otherwise the rewritten path: the
 * concatenated capture groups of `path`, or the path itself when there is no group.
 */
export function matchRule(m: RuleMatcher, r: RuleInput): string | null {
  if (m.methods !== null && !m.methods.test(r.method)) return null
  if (m.host !== null && !m.host.test(r.hostname)) return null
  if (m.headers !== null) {
    for (let i = 0; i < m.headers.length; i++) {
      const [name, re] = m.headers[i]!
      const v = getHeader(r.headers, name)
      if (v === undefined || !re.test(typeof v === 'string' ? v : v.toString('latin1'))) return null
    }
  }
  if (m.path === null) return r.path
  const res = m.path.exec(r.path)
  if (res === null) return null
  if (res.length === 1) return r.path
  let out = ''
  for (let i = 1; i < res.length; i++) if (res[i] !== undefined) out += res[i]
  return out
}

/** True when any rule matches, or there are no rules. */
export function matchAny(ms: readonly RuleMatcher[], r: RuleInput): boolean {
  if (ms.length === 0) return true
  for (let i = 0; i < ms.length; i++) if (matchRule(ms[i]!, r) !== null) return true
  return false
}
