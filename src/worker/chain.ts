/**
 * Policy chains, compiled once per API per snapshot: policies sorted by order (the
 * snapshot already sorted them), split into a request phase and a response phase, each
 * `null` when empty so the hot path pays one null check (fastify's hooks idea). Handlers
 * run by index; a promise is only touched when a handler returns one.
 *
 * @module
 */
import type { PolicySnap } from '../config/snapshot.js'
import type { Exchange } from './exchange.js'
import { POLICIES } from './policies/index.js'
import type { RequestHandler, RequestResult, ResponseHandler } from './policies/types.js'
import { compileRule, matchAny, type RuleMatcher } from './rules.js'

interface Step<F> {
  readonly fn: F
  /** Null = applies to every request of the API. */
  readonly rules: readonly RuleMatcher[] | null
  readonly name: string
}

export interface Chain {
  readonly request: ReadonlyArray<Step<RequestHandler>> | null
  readonly response: ReadonlyArray<Step<ResponseHandler>> | null
}

export function compileChain(policies: readonly PolicySnap[]): Chain {
  const request: Step<RequestHandler>[] = []
  const response: Step<ResponseHandler>[] = []
  for (const p of policies) {
    const mod = POLICIES[p.name]
    if (mod === undefined) throw new Error(`unknown policy "${p.name}" (${p.source})`)
    const h = mod.create(p.config as never)
    const rules = p.rules.length === 0 ? null : p.rules.map(compileRule)
    if (h.request !== null) request.push({ fn: h.request, rules, name: p.name })
    if (h.response !== null) response.push({ fn: h.response, rules, name: p.name })
  }
  return { request: request.length === 0 ? null : request, response: response.length === 0 ? null : response }
}

function isThenable(v: unknown): v is Promise<RequestResult> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
}

/** Runs the request phase from step `i`. Sync unless a handler returns a promise. */
export function runRequestPhase(steps: ReadonlyArray<Step<RequestHandler>>, ex: Exchange, i = 0): RequestResult | Promise<RequestResult> {
  for (; i < steps.length; i++) {
    const s = steps[i]!
    if (s.rules !== null && !matchAny(s.rules, ex)) continue
    const r = s.fn(ex)
    if (r === undefined) continue
    if (isThenable(r)) {
      const next = i + 1
      return r.then((v) => (v === undefined ? runRequestPhase(steps, ex, next) : v))
    }
    return r
  }
  return undefined
}

export function runResponsePhase(steps: ReadonlyArray<Step<ResponseHandler>>, ex: Exchange): void {
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!
    if (s.rules !== null && !matchAny(s.rules, ex)) continue
    s.fn(ex)
  }
}
