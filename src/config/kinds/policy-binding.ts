/** The PolicyBinding kind: attaches one policy to an ApiInstance from outside it. @module */
import { Type, type Static } from '@sinclair/typebox'
import { Closed, Name, Order, PolicyRef, resource, Rule } from './common.js'

export const PolicyBindingSpec = Closed({
  targetRef: Closed({ kind: Type.Literal('ApiInstance'), name: Name }),
  policyRef: PolicyRef,
  order: Type.Optional(Order),
  rules: Type.Optional(Type.Array(Rule)),
  config: Type.Optional(Type.Unknown()),
})
export type PolicyBindingSpec = Static<typeof PolicyBindingSpec>

export const PolicyBinding = resource('PolicyBinding', PolicyBindingSpec)
export type PolicyBinding = Static<typeof PolicyBinding>
