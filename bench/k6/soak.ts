// 10-minute soak: a steady open-model load (constant-arrival-rate), so a slowdown shows as
// latency instead of as fewer requests. Fails on p99 above P99_MS or errors above ERROR_RATE.
// With TOKEN set it goes through the chain route (jwt + rate-limit + metrics + access log),
// else through the bare route. Watch the gateway's memory meanwhile (gatehouse status, /metrics).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=500 bench/k6/soak.ts
//   TOKEN=$(node bench/k6/make-token.mjs) k6 run -e TOKEN="$TOKEN" -e RATE=500 bench/k6/soak.ts
import http from 'k6/http'
import { check } from 'k6'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, bearer, env, envNumber } from './lib.ts'

const RATE = envNumber('RATE', 500)
const withToken = env('TOKEN', '') !== ''

export const options: Options = {
  discardResponseBodies: true,
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: env('DURATION', '10m'),
      preAllocatedVUs: envNumber('VUS', Math.max(20, Math.ceil(RATE / 10))),
      maxVUs: envNumber('MAX_VUS', Math.max(100, RATE)),
    },
  },
  thresholds: {
    http_req_duration: [`p(99)<${envNumber('P99_MS', 50)}`, `p(50)<${envNumber('P50_MS', 10)}`],
    http_req_failed: [`rate<${envNumber('ERROR_RATE', 0.001)}`],
    checks: [`rate>${1 - envNumber('ERROR_RATE', 0.001)}`],
    dropped_iterations: [`count<${Math.ceil(RATE * 0.001) + 1}`],
  },
}

const url = `${BASE_URL}${withToken ? PATHS.chain : PATHS.bare}/`
const params = withToken ? { headers: { authorization: bearer() } } : {}

export default function (): void {
  const res = http.get(url, params)
  check(res, { 'status 200': (r) => r.status === 200 })
}
