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
import type { BodyInspector, BodyInspectorFactory, RequestHandler, RequestResult, ResponseHandler, WorkerServices } from './policies/types.js'
import { createHash } from 'node:crypto'
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
  /** Body inspectors; non-null means bodies are held until inspected. */
  readonly body: ReadonlyArray<Step<BodyInspectorFactory>> | null
}

/**
 * A policy instance's identity: the API, where the policy came from, and its config, so
 * two gateways with the same config agree (shared Redis keys) and a changed config starts
 * fresh state.
 */
function policyId(api: string, p: PolicySnap): string {
  const h = createHash('sha256').update(JSON.stringify([p.name, p.source, p.config])).digest('hex').slice(0, 12)
  return `${api}/${p.name}/${h}`
}

export function compileChain(api: string, policies: readonly PolicySnap[], services: WorkerServices): Chain {
  const request: Step<RequestHandler>[] = []
  const response: Step<ResponseHandler>[] = []
  const body: Step<BodyInspectorFactory>[] = []
  for (const p of policies) {
    const mod = POLICIES[p.name]
    if (mod === undefined) throw new Error(`unknown policy "${p.name}" (${p.source})`)
    const h = mod.create(p.config as never, { id: policyId(api, p), api, services })
    const rules = p.rules.length === 0 ? null : p.rules.map(compileRule)
    if (h.request !== null) request.push({ fn: h.request, rules, name: p.name })
    if (h.response !== null) response.push({ fn: h.response, rules, name: p.name })
    if (h.body !== undefined && h.body !== null) body.push({ fn: h.body, rules, name: p.name })
  }
  return {
    request: request.length === 0 ? null : request,
    response: response.length === 0 ? null : response,
    body: body.length === 0 ? null : body,
  }
}

/** The inspectors that apply to this request (their policies' rules match). */
export function bodyInspectors(steps: ReadonlyArray<Step<BodyInspectorFactory>>, ex: Exchange): BodyInspector[] {
  const out: BodyInspector[] = []
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!
    if (s.rules !== null && !matchAny(s.rules, ex)) continue
    const b = s.fn(ex)
    if (b !== null) out.push(b)
  }
  return out
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
      const name = s.name
      return r.then((v) => {
        if (v === undefined) return runRequestPhase(steps, ex, next)
        ex.decidedBy = name
        return v
      })
    }
    ex.decidedBy = s.name
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
