/**
 * The registry of policy handlers: the single list a new policy is added to (its schema
 * goes in ./schemas.ts, which the primary reads without loading any handler).
 *
 * @module
 */
import type { PolicyModule } from './types.js'
import { cors } from './cors/handler.js'
import { headerInjection } from './header-injection/handler.js'
import { headerRemoval } from './header-removal/handler.js'

export const POLICIES: Readonly<Record<string, PolicyModule<never>>> = Object.freeze({
  [cors.name]: cors as PolicyModule<never>,
  [headerInjection.name]: headerInjection as PolicyModule<never>,
  [headerRemoval.name]: headerRemoval as PolicyModule<never>,
})
