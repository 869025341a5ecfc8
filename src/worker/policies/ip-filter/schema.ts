/** ip-filter options. Pure data: safe for the primary to import. @module */
import { Type, type Static } from '@sinclair/typebox'

const Cidrs = (description: string) => Type.Array(
  Type.String({ format: 'cidr', errorMessage: 'must be an IP address or CIDR' }),
  { minItems: 1, description },
)

/** An anyOf branch "field present"; Ajv's strictRequired wants the field declared beside `required`. */
function requires(field: string): Record<string, unknown> {
  return { type: 'object', properties: { [field]: {} }, required: [field] }
}

export const schema = Type.Object({
  allow: Type.Optional(Cidrs('IPv4/IPv6 addresses or CIDRs that may call the API; when given, every other address is refused.')),
  deny: Type.Optional(Cidrs('IPv4/IPv6 addresses or CIDRs that are refused; deny wins over allow.')),
  useForwardedFor: Type.Optional(Type.Boolean({
    default: false,
    description: 'Filter on the client named in X-Forwarded-For (the right-most entry that is not one of the Configuration\'s trustedProxies) instead of the connection\'s peer.',
  })),
}, {
  additionalProperties: false,
  // Neither list would filter nothing: almost certainly a mistake in the config.
  anyOf: [requires('allow'), requires('deny')],
  errorMessage: 'needs allow, deny or both',
})

export type IpFilterConfig = Static<typeof schema>
export const order = 15
