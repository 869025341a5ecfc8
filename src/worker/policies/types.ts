/**
 * The contract between the chain and a policy. A policy module is a folder with
 * `schema.ts` (options, pure data) and `handler.ts` exporting a `PolicyModule`: its
 * factory does the option work once and returns small named per-request functions.
 *
 * @module
 */
import type { TSchema } from '@sinclair/typebox'
import type { Exchange } from '../exchange.js'
import type { HeaderList } from '../headers.js'

/** A response made by the gateway itself (a rejection or a preflight answer). */
export interface LocalResponse {
  status: number
  headers: HeaderList | null
  body: string
  contentType: string | null
  /** Error code when this is an error, for the log line. */
  code: string | null
}

export type RequestResult = LocalResponse | undefined
/** Synchronous unless the policy must wait (DESIGN.md: a JWKS miss, a rate-limit lease). */
export type RequestHandler = (ex: Exchange) => RequestResult | Promise<RequestResult>
/** Edits `ex.responseHeaders` before the response starts. Always synchronous. */
export type ResponseHandler = (ex: Exchange) => void

/**
 * Inspects a request body chunk by chunk before any of it goes upstream. While an API has
 * an inspector, the gateway holds the body (bounded by maxRequestBodyBytes) and dispatches
 * only after `end` passed; a LocalResponse from either call rejects the request.
 */
export interface BodyInspector {
  write(chunk: Buffer): LocalResponse | undefined
  end(): LocalResponse | undefined
}
/** Makes the per-request inspector; called after the request phase, when the policy's rules match. */
export type BodyInspectorFactory = (ex: Exchange) => BodyInspector | null

export interface PolicyHandlers {
  request: RequestHandler | null
  response: ResponseHandler | null
  /** Request-body inspection (json-threat-protection); omit or null when not needed. */
  body?: BodyInspectorFactory | null
}

/**
 * What a policy instance gets besides its config, from the worker that runs it. Handlers
 * that keep state across requests (rate-limit leases, caches) key it by `id`, which is
 * stable across reloads as long as the policy's place and config do not change.
 */
export interface PolicyContext {
  /** Stable identity: `${api}/${source}` plus a hash of the config. */
  readonly id: string
  readonly api: string
  /** Worker-level services a policy may use (shared stores); absent ones are null. */
  readonly services: WorkerServices
}

/** Worker-global services handed to policy factories. Extend as policies need them. */
export interface WorkerServices {
  /** Rate-limit lease store client (embedded primary store or Redis). */
  readonly leases: import('../../ratelimit/lease.js').LeaseClient | null
}

export interface PolicyModule<C = unknown> {
  readonly name: string
  readonly order: number
  readonly schema: TSchema
  create(config: C, ctx: PolicyContext): PolicyHandlers
}
