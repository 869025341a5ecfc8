// (d) The realistic chain: a small GET with a bearer token through jwt-validation and
// rate-limit (a limit far above the load), with metrics and the access log on.
//   export BENCH_JWT_SECRET=...   # the same value the gateway was started with
//   TOKEN=$(node bench/k6/make-token.mjs) k6 run -e TOKEN="$TOKEN" -e BASE_URL=http://127.0.0.1:8080 bench/k6/chain.ts
import http from 'k6/http'
import { check } from 'k6'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, bearer, env, envNumber } from './lib.ts'

export const options: Options = {
  discardResponseBodies: true,
  scenarios: {
    chain: { executor: 'constant-vus', vus: envNumber('VUS', 100), duration: env('DURATION', '30s') },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: [`p(99)<${envNumber('P99_MS', 50)}`],
  },
}

const url = `${BASE_URL}${PATHS.chain}/`
const params = { headers: { authorization: bearer() } }

export default function (): void {
  const res = http.get(url, params)
  check(res, {
    'status 200': (r) => r.status === 200,
    'rate-limit headers': (r) => r.headers['Ratelimit-Policy'] !== undefined || r.headers['Ratelimit-Limit'] !== undefined,
  })
}
