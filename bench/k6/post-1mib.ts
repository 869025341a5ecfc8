// (c) 1 MiB POST bodies through the gateway (the upstream reads each body whole).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=16 -e DURATION=30s bench/k6/post-1mib.ts
import http from 'k6/http'
import { check } from 'k6'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, env, envNumber } from './lib.ts'

export const options: Options = {
  discardResponseBodies: true,
  scenarios: {
    post_1mib: { executor: 'constant-vus', vus: envNumber('VUS', 16), duration: env('DURATION', '30s') },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: [`p(99)<${envNumber('P99_MS', 250)}`],
    // 1 MiB per request must have gone out (k6 counts what it sent)
    data_sent: [`count>${1024 * 1024}`],
  },
}

const url = `${BASE_URL}${PATHS.bare}/post`
const body = 'x'.repeat(envNumber('BODY_BYTES', 1024 * 1024)) // built once per VU, in the init context
const params = { headers: { 'content-type': 'application/octet-stream' } }

export default function (): void {
  const res = http.post(url, body, params)
  check(res, { 'status 200': (r) => r.status === 200 })
}
