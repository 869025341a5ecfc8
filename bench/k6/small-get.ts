// (a) small GET through the gateway, keep-alive, a fixed number of VUs (closed model, like wrk).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=100 -e DURATION=30s bench/k6/small-get.ts
import http from 'k6/http'
import { check } from 'k6'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, env, envNumber } from './lib.ts'

export const options: Options = {
  discardResponseBodies: true,
  scenarios: {
    small_get: { executor: 'constant-vus', vus: envNumber('VUS', 100), duration: env('DURATION', '30s') },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: [`p(99)<${envNumber('P99_MS', 50)}`],
  },
}

const url = `${BASE_URL}${PATHS.bare}/`

export default function (): void {
  const res = http.get(url)
  check(res, { 'status 200': (r) => r.status === 200 })
}
