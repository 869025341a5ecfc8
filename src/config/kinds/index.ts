/** kind → schema: the one list of resource kinds the loader accepts. @module */
import type { TSchema } from '@sinclair/typebox'
import { ApiInstance } from './api-instance.js'
import { Configuration } from './configuration.js'
import { PolicyBinding } from './policy-binding.js'
import { Service } from './service.js'

export const KINDS = {
  ApiInstance,
  Service,
  PolicyBinding,
  Configuration,
} as const satisfies Record<string, TSchema>

export type KindName = keyof typeof KINDS

export function isKindName(k: unknown): k is KindName {
  return typeof k === 'string' && Object.hasOwn(KINDS, k)
}

export { API_VERSION } from './common.js'
