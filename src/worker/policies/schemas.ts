/**
 * The registry of policy option schemas: name → schema and default order. Pure data, so
 * the primary and `gatehouse validate` can check policy configs without loading any
 * handler. Its twin, ./index.ts, lists the handlers; a test keeps the two lists equal.
 *
 * @module
 */
import type { TSchema } from '@sinclair/typebox'
import * as apiKey from './api-key/schema.js'
import * as cors from './cors/schema.js'
import * as headerInjection from './header-injection/schema.js'
import * as headerRemoval from './header-removal/schema.js'
import * as httpBasicAuthentication from './http-basic-authentication/schema.js'
import * as ipFilter from './ip-filter/schema.js'
import * as jsonThreatProtection from './json-threat-protection/schema.js'
import * as jwtValidation from './jwt-validation/schema.js'
import * as oauth2Introspection from './oauth2-introspection/schema.js'
import * as rateLimit from './rate-limit/schema.js'
import * as spikeControl from './spike-control/schema.js'

export interface PolicySchemaEntry {
  readonly schema: TSchema
  /** Default order (lower runs first) when a binding gives none. */
  readonly order: number
}

export const POLICY_SCHEMAS: Readonly<Record<string, PolicySchemaEntry>> = Object.freeze({
  'api-key': apiKey,
  'cors': cors,
  'header-injection': headerInjection,
  'header-removal': headerRemoval,
  'http-basic-authentication': httpBasicAuthentication,
  'ip-filter': ipFilter,
  'json-threat-protection': jsonThreatProtection,
  'jwt-validation': jwtValidation,
  'oauth2-introspection': oauth2Introspection,
  'rate-limit': rateLimit,
  'spike-control': spikeControl,
})

/*
 * Default orders (lower runs first, DESIGN.md), following Kong's relative priorities:
 * cors 10 (answers preflights before auth), authentication 20–30, access control 35,
 * rate limiting 40, spike control 45, header removal 80, header injection 81.
 * A binding without `order` and a policy without a default use 50.
 */
