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

export interface PolicyHandlers {
  request: RequestHandler | null
  response: ResponseHandler | null
}

export interface PolicyModule<C = unknown> {
  readonly name: string
  readonly order: number
  readonly schema: TSchema
  create(config: C): PolicyHandlers
}
