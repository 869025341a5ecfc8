/**
 * Config errors: one shape for every failure the loader finds (YAML syntax, schema,
 * cross-resource), so `gatehouse validate` can print them all in the compiler-like
 * `file:line:col: path: message` form editors and CI annotators understand.
 *
 * @module
 * @example
 *   for (const e of result.errors) console.error(formatConfigError(e))
 *   // conf.d/orders.yaml:14:9: spec.services.v1.routes[0].rules[0].path: invalid regular expression: ...
 */

export interface ConfigError {
  /** As the user typed the directory: path.join(dir, basename). */
  file: string
  /** 1-based; 0 when the error concerns the whole file or directory. */
  line: number
  col: number
  /** Dotted/bracket path from the document root, "" for the document itself. */
  path: string
  message: string
}

/** A path inside one YAML document, as keys and sequence indexes. */
export type DocPath = readonly (string | number)[]

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/

/** ['spec', 'services', 'v1', 'routes', 0] → "spec.services.v1.routes[0]". */
export function formatPath(path: DocPath): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(seg)}]`
  }
  return out
}

export function formatConfigError(e: ConfigError): string {
  const where = e.line > 0 ? `${e.file}:${e.line}:${e.col}` : e.file
  return e.path === '' ? `${where}: ${e.message}` : `${where}: ${e.path}: ${e.message}`
}
