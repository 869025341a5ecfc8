/**
 * Reads a config directory into YAML documents that keep their source positions, so
 * every later stage (substitution, schema, cross-resource checks) can point at the exact
 * line:col of the value it complains about.
 *
 * @module
 */
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml'
import { formatPath, type ConfigError, type DocPath } from './errors.js'

export interface SourceDoc {
  /** Display path: path.join(dir, basename). */
  file: string
  doc: Document.Parsed
  lines: LineCounter
}

export interface ReadResult {
  files: string[]
  docs: SourceDoc[]
  errors: ConfigError[]
}

/** `*.yaml`/`*.yml`, sorted by code unit so the order is the same on every machine. */
export async function readConfigDir(dir: string): Promise<ReadResult> {
  const errors: ConfigError[] = []
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    errors.push({ file: dir, line: 0, col: 0, path: '', message: `cannot read config directory (${errnoText(err)})` })
    return { files: [], docs: [], errors }
  }
  // Dotfiles are skipped: Kubernetes ConfigMap mounts and editors leave them beside real files.
  const names = entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.') && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort()
  const files: string[] = []
  const docs: SourceDoc[] = []
  for (const name of names) {
    const file = path.join(dir, name)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      // A dangling symlink or a directory named x.yaml lands here too.
      errors.push({ file, line: 0, col: 0, path: '', message: `cannot read file (${errnoText(err)})` })
      continue
    }
    files.push(file)
    const lines = new LineCounter()
    // prettyErrors off: we format positions ourselves and want one-line messages.
    let parsed
    try {
      parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
    } catch (err) {
      // The composer recurses once per nesting level: about 800 nested collections exhaust
      // the stack, which must be a config error, not a crash of validate/start.
      errors.push({ file, line: 0, col: 0, path: '', message: `cannot parse YAML: ${stackExhausted(err) ? 'collections nested too deeply' : (err as Error).message}` })
      continue
    }
    const list = Array.isArray(parsed) ? parsed : []
    for (const doc of list) {
      const src: SourceDoc = { file, doc, lines }
      if (doc.errors.length > 0) {
        for (const e of doc.errors) errors.push(yamlError(src, text, e.code, e.message, e.pos[0]))
        continue
      }
      // A trailing `---` or a comment-only document is not a resource (its contents
      // parse as a null scalar after a `---` marker, as nothing without one).
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue
      docs.push(src)
    }
  }
  return { files, docs, errors }
}

function yamlError(src: SourceDoc, text: string, code: string, message: string, offset: number): ConfigError {
  const { line, col } = src.lines.linePos(offset)
  const found = pathAtOffset(src.doc.contents, offset, [])
  // The composer sometimes catches its own stack overflow and reports it as a document error.
  let msg = /Maximum call stack size exceeded/.test(message) ? 'collections nested too deeply' : message
  if (code === 'DUPLICATE_KEY') {
    const key = found?.key ?? text.slice(offset).match(/^[^:\n]*/)?.[0].trim() ?? ''
    msg = `duplicate key ${JSON.stringify(key)}`
  }
  return { file: src.file, line, col, path: found ? formatPath(found.path) : '', message: msg }
}

/** The path of the key that starts exactly at `offset`, for YAML errors reported by offset. */
function pathAtOffset(node: unknown, offset: number, at: (string | number)[]): { path: DocPath; key: string } | null {
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : null
      if (k === null) continue
      const kr = (pair.key as Node).range
      if (kr && kr[0] === offset) return { path: [...at, k], key: k }
      const inner = pathAtOffset(pair.value, offset, [...at, k])
      if (inner) return inner
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) {
      const inner = pathAtOffset(node.items[i], offset, [...at, i])
      if (inner) return inner
    }
  }
  return null
}

/**
 * The node at `path`, or the deepest existing ancestor when part of the path is missing
 * (a missing required field is reported at its parent). With `key`, the last segment
 * resolves to the map key rather than its value: "unknown field" points at the typo.
 */
export function locate(src: SourceDoc, p: DocPath, key = false): { line: number; col: number } {
  let node: unknown = src.doc.contents
  let offset = (node as Node | null)?.range?.[0] ?? 0
  for (let i = 0; i < p.length; i++) {
    if (isAlias(node)) node = node.resolve(src.doc)
    const seg = p[i]!
    let next: unknown
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg))
      if (!pair) break
      const keyNode = pair.key as Node
      if (key && i === p.length - 1) {
        offset = keyNode.range?.[0] ?? offset
        break
      }
      // `key:` with nothing after it has no value node; the key is the best position.
      next = pair.value ?? null
      if (next === null) {
        offset = keyNode.range?.[0] ?? offset
        break
      }
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg]
      if (next === undefined) break
    } else {
      break
    }
    node = next
    offset = (node as Node).range?.[0] ?? offset
  }
  return src.lines.linePos(offset)
}

/**
 * Out of stack: a RangeError, or whatever the operation running at that depth threw (V8
 * reports a regex compiled there as "SyntaxError: Invalid regular expression: ...:
 * Maximum call stack size exceeded").
 */
export function stackExhausted(err: unknown): boolean {
  return err instanceof RangeError || /Maximum call stack size exceeded/.test(String((err as Error | null)?.message))
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code ?? String(e.message ?? err)
}

/** One place that builds a ConfigError from a document position. */
export function errorAt(src: SourceDoc, p: DocPath, message: string, key = false): ConfigError {
  const { line, col } = locate(src, p, key)
  return { file: src.file, line, col, path: formatPath(p), message }
}

export function where(src: SourceDoc, p: DocPath): string {
  const { line, col } = locate(src, p)
  return `${src.file}:${line}:${col}`
}
