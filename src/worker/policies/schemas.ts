/**
 * The registry of policy option schemas: name → schema and default order. Pure data, so
 * the primary and `gatehouse validate` can check policy configs without loading any
 * handler. Its twin, ./index.ts, lists the handlers; a test keeps the two lists equal.
 *
 * @module
 */
import type { TSchema } from '@sinclair/typebox'
import * as cors from './cors/schema.js'
import * as headerInjection from './header-injection/schema.js'
import * as headerRemoval from './header-removal/schema.js'

export interface PolicySchemaEntry {
  readonly schema: TSchema
  /** Default order (lower runs first) when a binding gives none. */
  readonly order: number
}

export const POLICY_SCHEMAS: Readonly<Record<string, PolicySchemaEntry>> = Object.freeze({
  'cors': cors,
  'header-injection': headerInjection,
  'header-removal': headerRemoval,
})

/*
 * Default orders (lower runs first, DESIGN.md), following Kong's relative priorities:
 * cors 10 (answers preflights before auth), authentication 20–30, access control 35,
 * rate limiting 40, spike control 45, header removal 80, header injection 81.
 * A binding without `order` and a policy without a default use 50.
 */
