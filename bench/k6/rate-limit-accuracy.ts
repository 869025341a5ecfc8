// Rate-limit accuracy: an open-model load (constant-arrival-rate) of RATE requests per second
// against a route limited to LIMIT per second. With fixed windows the expected share of 429s
// is 1 - LIMIT/RATE; the run fails when the measured share is further than TOLERANCE from it,
// when any other status shows up, or when a 429 comes without Retry-After.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e LIMIT=200 -e RATE=300 -e DURATION=60s bench/k6/rate-limit-accuracy.ts
// LIMIT must be the route's maximumRequests per second (200 in bench/k6/gateway/gatehouse.yaml).
// Each run uses its own key (x-bench-client: RUN_ID), so earlier runs' windows do not count.
import http from 'k6/http'
import { check } from 'k6'
import { Counter, Rate } from 'k6/metrics'
import type { Options } from 'k6/options'
import { BASE_URL, PATHS, env, envNumber } from './lib.ts'

const LIMIT = envNumber('LIMIT', 200)
const RATE = envNumber('RATE', 300)
const TOLERANCE = envNumber('TOLERANCE', 0.03)
const DURATION = env('DURATION', '60s')
const EXPECTED = Math.max(0, 1 - LIMIT / RATE)
const RUN_ID = env('RUN_ID', `k6-${Date.now()}`)

export const options: Options = {
  discardResponseBodies: true,
  scenarios: {
    above_limit: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: envNumber('VUS', Math.max(10, Math.ceil(RATE / 20))),
      maxVUs: envNumber('MAX_VUS', Math.max(50, RATE)),
    },
  },
  thresholds: {
    // the share of 429s is within TOLERANCE of 1 - LIMIT/RATE
    rate_limited: [`rate>=${Math.max(0, EXPECTED - TOLERANCE)}`, `rate<=${Math.min(1, EXPECTED + TOLERANCE)}`],
    // nothing but 200 and 429
    unexpected_status: ['count==0'],
    checks: ['rate==1'],
    // k6 must have kept up with the arrival rate, or the share means nothing
    dropped_iterations: [`count<${Math.ceil(RATE * 0.01) + 1}`],
  },
}

const limited = new Rate('rate_limited')
const admitted = new Counter('admitted')
const unexpected = new Counter('unexpected_status')
const url = `${BASE_URL}${PATHS.limited}/`
const params = { headers: { 'x-bench-client': RUN_ID }, responseCallback: http.expectedStatuses(200, 429) }

export function setup(): void {
  console.log(`limit ${LIMIT}/s, offered ${RATE}/s for ${DURATION}: expecting ${(EXPECTED * 100).toFixed(1)} % 429s (± ${(TOLERANCE * 100).toFixed(1)} points), key ${RUN_ID}`)
}

export default function (): void {
  const res = http.get(url, params)
  limited.add(res.status === 429)
  if (res.status === 200) admitted.add(1)
  if (res.status !== 200 && res.status !== 429) unexpected.add(1)
  if (res.status === 429) check(res, { '429 has Retry-After': (r) => r.headers['Retry-After'] !== undefined })
}
