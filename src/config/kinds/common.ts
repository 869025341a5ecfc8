/**
 * Building blocks shared by the resource kinds. Every object is closed
 * (`additionalProperties: false`) so a typo is an error, not a silently ignored key.
 *
 * `errorMessage` is an annotation our Ajv setup understands (./../ajv.ts): the message
 * shown when a pattern, format or union fails, instead of a regex nobody can read.
 *
 * @module
 */
import { Type, type ObjectOptions, type Static, type TLiteral, type TProperties, type TSchema, type TUnion } from '@sinclair/typebox'

export const API_VERSION = 'gatehouse/v1'

export function Closed<T extends TProperties>(props: T, opts: ObjectOptions = {}) {
  return Type.Object(props, { ...opts, additionalProperties: false })
}

/** Literal union; the validator lists the choices when none matches. */
export function OneOf<const T extends string[]>(values: T, opts: { default?: T[number] } = {}): TUnion<{ [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(values.map((v) => Type.Literal(v)), opts) as never
}

export const NAME_PATTERN = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'
export const Name = Type.String({
  pattern: NAME_PATTERN,
  maxLength: 253,
  errorMessage: 'must be a lowercase DNS-1123 name (a-z, 0-9, "-", "."; starting and ending with a letter or digit)',
})

export const Metadata = Closed({
  name: Name,
  labels: Type.Optional(Type.Record(Type.String(), Type.String(), { additionalProperties: false })),
})

export const NonEmpty = Type.String({ minLength: 1 })

/** Checked semantically (scheme, host) by the cross-resource pass, which knows the context. */
export const Url = NonEmpty

/** A regex source; the worker anchors it (^(?:...)$) and compiles it once per snapshot. */
export const Regex = Type.String({ format: 'regex' })

const TOKEN = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$'
export const HeaderName = Type.String({ pattern: TOKEN, errorMessage: 'must be an HTTP header name' })

export const Rule = Closed({
  /** Matched against the path after the base path; capture groups form the upstream path. */
  path: Type.Optional(Regex),
  methods: Type.Optional(Regex),
  host: Type.Optional(Regex),
  /** Header name (any case) → regex over its value. */
  headers: Type.Optional(Type.Record(HeaderName, Regex, { additionalProperties: false })),
})
export type Rule = Static<typeof Rule>

export const Order = Type.Integer({ minimum: 0, maximum: 10_000 })

export const PolicyRef = Closed({ name: NonEmpty })

export const Millis = (def: number, minimum = 0) => Type.Integer({ minimum, default: def })

export function resource<K extends string, S extends TSchema>(kind: K, spec: S) {
  return Closed({
    apiVersion: Type.Literal(API_VERSION),
    kind: Type.Literal(kind),
    metadata: Metadata,
    spec,
  })
}
