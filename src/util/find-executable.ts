/**
 * Looks a program up in PATH (absolute entries only, so a relative PATH entry can never
 * make the primary run a file from its working directory). Not cached: callers run it at
 * start or when a worker is forked, and PATH may change.
 *
 * @module
 */
import { accessSync, constants } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'

export function findExecutable(name: string, pathVar: string | undefined = process.env.PATH): string | null {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (!isAbsolute(dir)) continue
    const file = join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {}
  }
  return null
}
