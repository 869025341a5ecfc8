// (b) 64 KiB responses through the gateway (bodies are read and counted, then discarded).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=100 -e DURATION=30s bench/k6/response-64k.ts
import http from 'k6/http'
import { check } from 'k6'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, env, envNumber } from './lib.ts'

export const options: Options = {
  scenarios: {
    response_64k: { executor: 'constant-vus', vus: envNumber('VUS', 100), duration: env('DURATION', '30s') },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: [`p(99)<${envNumber('P99_MS', 100)}`],
  },
}

const url = `${BASE_URL}${PATHS.bare}/64k`
const SIZE = 64 * 1024

export default function (): void {
  const res = http.get(url, { responseType: 'binary' })
  check(res, {
    'status 200': (r) => r.status === 200,
    '64 KiB body': (r) => r.body instanceof ArrayBuffer && r.body.byteLength === SIZE,
  })
}
