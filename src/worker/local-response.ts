/**
 * Gateway-made responses: RFC 9457 problems from the one error table.
 *
 * @module
 */
import { ERRORS, PROBLEM_BODIES, problemBody, type ErrorCode } from '../errors.js'
import type { HeaderList } from './headers.js'
import type { LocalResponse } from './policies/types.js'

export const PROBLEM_JSON = 'application/problem+json'

export function problem(code: ErrorCode, detail?: string, headers: HeaderList | null = null): LocalResponse {
  const e = ERRORS[code]
  return {
    status: e.status,
    headers,
    body: detail === undefined ? PROBLEM_BODIES[code] : problemBody(e, detail),
    contentType: PROBLEM_JSON,
    code,
  }
}
