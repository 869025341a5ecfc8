/**
 * json-threat-protection: rejects JSON request bodies whose structure is too deep, too wide
 * or too long, and malformed JSON, before any of it reaches the upstream. The body is held
 * by the gateway (RequestBody hold mode) and scanned chunk by chunk with an incremental
 * tokenizer that never builds the value (./tokenizer.ts); the upstream request starts only
 * after the last byte passed.
 *
 * - Applies to requests with a body and a JSON Content-Type (`application/json`, or any
 *   `type/subtype+json`, parameters ignored). Other bodies pass uninspected, or get 400
 *   with `rejectNonJson: true`.
 * - A limit exceeded → 400 GH_ERR_JSON_THREAT, detail naming the limit and the location
 *   ("depth 11 exceeds maxDepth 10 at $.a.b"); malformed JSON → 400 GH_ERR_JSON_INVALID.
 * - A compressed body (Content-Encoding other than identity) cannot be inspected and is
 *   rejected as GH_ERR_JSON_INVALID rather than passed on unchecked.
 *
 * @module
 * @example
 *   policies:
 *     - policyRef: { name: json-threat-protection }
 *       config: { maxDepth: 10, maxEntriesPerObject: 100, maxStringLength: 10000 }
 */
import type { Exchange } from '../../exchange.js'
import { getHeader } from '../../headers.js'
import { problem } from '../../local-response.js'
import type { BodyInspector, LocalResponse, PolicyHandlers, PolicyModule } from '../types.js'
import { schema, order, type JsonThreatProtectionConfig } from './schema.js'
import { JsonScanner, VERDICT_OK, VERDICT_THREAT, type JsonLimits } from './tokenizer.js'

const NAME = 'json-threat-protection'
/** `application/json` or `type/subtype+json`, optionally followed by parameters. */
const JSON_TYPE = /^\s*(?:application\/json|[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]*\+json)\s*(?:;|$)/i

export function isJsonContentType(ct: string): boolean {
  return JSON_TYPE.test(ct)
}

/** One per inspected request: the scanner plus the exchange to blame. */
class JsonBodyInspector implements BodyInspector {
  private readonly scanner: JsonScanner
  constructor(limits: Readonly<JsonLimits>, private readonly ex: Exchange) {
    this.scanner = new JsonScanner(limits)
  }

  write(chunk: Buffer): LocalResponse | undefined {
    return this.scanner.write(chunk) === VERDICT_OK ? undefined : this.reject()
  }

  end(): LocalResponse | undefined {
    return this.scanner.end() === VERDICT_OK ? undefined : this.reject()
  }

  private reject(): LocalResponse {
    this.ex.decidedBy = NAME
    const s = this.scanner
    return problem(s.verdict === VERDICT_THREAT ? 'GH_ERR_JSON_THREAT' : 'GH_ERR_JSON_INVALID', s.detail)
  }
}

export const jsonThreatProtection: PolicyModule<JsonThreatProtectionConfig> = {
  name: NAME,
  order,
  schema,
  create(config): PolicyHandlers {
    const limits: Readonly<JsonLimits> = Object.freeze({
      maxDepth: config.maxDepth ?? Infinity,
      maxEntriesPerObject: config.maxEntriesPerObject ?? Infinity,
      maxNameLength: config.maxNameLength ?? Infinity,
      maxArraySize: config.maxArraySize ?? Infinity,
      maxStringLength: config.maxStringLength ?? Infinity,
    })
    const notJson = problem('GH_ERR_JSON_INVALID', 'the request body is not JSON (Content-Type)')
    const encoded = problem('GH_ERR_JSON_INVALID', 'a compressed JSON body (Content-Encoding) cannot be inspected')
    // Stateless: one shared instance rejects every compressed JSON body at its first call.
    const rejectEncoded: BodyInspector = {
      write: () => encoded,
      end: () => encoded,
    }

    return {
      request: config.rejectNonJson === true
        ? function jsonContentType(ex: Exchange) {
          if (!ex.hasBody) return undefined
          const ct = getHeader(ex.headers, 'content-type')
          return ct !== undefined && JSON_TYPE.test(String(ct)) ? undefined : notJson
        }
        : null,
      response: null,
      body: function jsonThreatInspector(ex: Exchange): BodyInspector | null {
        const ct = getHeader(ex.headers, 'content-type')
        if (ct === undefined || !JSON_TYPE.test(String(ct))) return null
        const ce = getHeader(ex.headers, 'content-encoding')
        if (ce !== undefined && String(ce).trim().toLowerCase() !== 'identity') { ex.decidedBy = NAME; return rejectEncoded }
        return new JsonBodyInspector(limits, ex)
      },
    }
  },
}
