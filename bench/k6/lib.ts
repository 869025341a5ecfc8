// Shared by the k6 scripts: environment parsing and the gateway's URLs.
// Every script reads BASE_URL (default http://127.0.0.1:8080, the listener of
// bench/k6/gateway/gatehouse.yaml); paths below are that config's ApiInstances.

/** __ENV[name] or `def`. */
export function env(name: string, def: string): string {
  const v = __ENV[name]
  return v === undefined || v === '' ? def : v
}

/** __ENV[name] as a number (throws at init on garbage, so a typo never runs a test). */
export function envNumber(name: string, def: number): number {
  const raw = env(name, String(def))
  const n = Number(raw)
  if (!Number.isFinite(n)) throw new Error(`${name}=${raw} is not a number`)
  return n
}

/** BASE_URL without a trailing slash. */
export const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '')

/** Routes of bench/k6/gateway/gatehouse.yaml. */
export const PATHS = {
  /** no policy: upstream `/` (about 100 bytes), `/64k`, `/post` */
  bare: '/bare',
  /** jwt-validation + rate-limit (far above any load) + metrics + access log */
  chain: '/chain',
  /** rate-limit LIMIT requests per second, keyed on the x-bench-client header */
  limited: '/limited',
} as const

/** The bearer token for the chain route (see bench/k6/make-token.mjs). */
export function bearer(): string {
  const token = env('TOKEN', '')
  if (token === '') throw new Error('TOKEN is not set: TOKEN=$(node bench/k6/make-token.mjs) k6 run ...')
  return `Bearer ${token}`
}
