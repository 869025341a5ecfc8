/**
 * The registry of policy handlers: the single list a new policy is added to (its schema
 * goes in ./schemas.ts, which the primary reads without loading any handler).
 *
 * @module
 */
import type { PolicyModule } from './types.js'
import { apiKey } from './api-key/handler.js'
import { cors } from './cors/handler.js'
import { headerInjection } from './header-injection/handler.js'
import { headerRemoval } from './header-removal/handler.js'
import { httpBasicAuthentication } from './http-basic-authentication/handler.js'
import { ipFilter } from './ip-filter/handler.js'
import { jsonThreatProtection } from './json-threat-protection/handler.js'
import { jwtValidation } from './jwt-validation/handler.js'
import { oauth2Introspection } from './oauth2-introspection/handler.js'
import { rateLimit } from './rate-limit/handler.js'
import { spikeControl } from './spike-control/handler.js'

export const POLICIES: Readonly<Record<string, PolicyModule<never>>> = Object.freeze({
  [apiKey.name]: apiKey as PolicyModule<never>,
  [cors.name]: cors as PolicyModule<never>,
  [headerInjection.name]: headerInjection as PolicyModule<never>,
  [headerRemoval.name]: headerRemoval as PolicyModule<never>,
  [httpBasicAuthentication.name]: httpBasicAuthentication as PolicyModule<never>,
  [ipFilter.name]: ipFilter as PolicyModule<never>,
  [jsonThreatProtection.name]: jsonThreatProtection as PolicyModule<never>,
  [jwtValidation.name]: jwtValidation as PolicyModule<never>,
  [oauth2Introspection.name]: oauth2Introspection as PolicyModule<never>,
  [rateLimit.name]: rateLimit as PolicyModule<never>,
  [spikeControl.name]: spikeControl as PolicyModule<never>,
})
