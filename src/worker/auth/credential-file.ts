/**
 * `name:secret` line files (htpasswd, API key files): `#` comments and blank lines are
 * skipped, every bad line is reported at once as file:line, and no line is ever echoed
 * (it may hold a hash or, by mistake, a plaintext secret that must not reach a log).
 *
 * @module
 */

/** What a line's secret part parses to: a value, or the reason it is refused. */
export type LineResult<T> = { value: T } | { error: string }

/**
 * Parses every `name:rest` line with `parse`; throws one Error listing every problem.
 * `what` names the file kind ("htpasswd file"), `shape` the expected form ("user:hash").
 */
export function parseColonFile<T>(text: string, file: string, what: string, shape: string,
  parse: (name: string, rest: string, where: string) => LineResult<T>): T[] {
  const out: T[] = []
  const problems: string[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const where = `${file}:${i + 1}`
    const colon = line.indexOf(':')
    if (colon <= 0) { problems.push(`${where}: expected "${shape}"`); continue }
    const r = parse(line.slice(0, colon), line.slice(colon + 1), where)
    if ('error' in r) problems.push(`${where}: ${r.error}`)
    else out.push(r.value)
  }
  if (problems.length > 0) throw new Error(`invalid ${what} ${file}:\n  ${problems.join('\n  ')}`)
  return out
}
