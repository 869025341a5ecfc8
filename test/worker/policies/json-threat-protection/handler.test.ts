import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Value } from '@sinclair/typebox/value'
import { isJsonContentType, jsonThreatProtection } from '../../../../src/worker/policies/json-threat-protection/handler.js'
import { schema } from '../../../../src/worker/policies/json-threat-protection/schema.js'
import type { Exchange } from '../../../../src/worker/exchange.js'
import type { PolicyContext } from '../../../../src/worker/policies/types.js'

const ctx = { id: 't/json', api: 't', services: { leases: null } } as unknown as PolicyContext
function ex(headers: string[], hasBody = true): Exchange {
  return { headers, hasBody, decidedBy: null } as unknown as Exchange
}

describe('json-threat-protection handler', () => {
  test('JSON media types: application/json and any +json, parameters and case ignored', () => {
    for (const t of ['application/json', 'Application/JSON; charset=utf-8', 'application/problem+json', 'application/vnd.api+json;v=1']) {
      assert.ok(isJsonContentType(t), t)
    }
    for (const t of ['text/plain', 'application/jsonp', 'application/json-seq', 'text/html; x=application/json', '']) {
      assert.ok(!isJsonContentType(t), t)
    }
  })

  test('the schema accepts the five limits and rejectNonJson, nothing else', () => {
    assert.ok(Value.Check(schema, { maxDepth: 10, maxEntriesPerObject: 1, maxNameLength: 1, maxArraySize: 1, maxStringLength: 1, rejectNonJson: true }))
    assert.ok(!Value.Check(schema, { maxDepth: -1 }))
    assert.ok(!Value.Check(schema, { maxDeep: 1 }))
  })

  test('inspects only JSON bodies; others pass unless rejectNonJson', () => {
    const h = jsonThreatProtection.create({ maxDepth: 1 }, ctx)
    assert.equal(h.request, null)
    assert.equal(h.body!(ex(['content-type', 'text/plain'])), null)
    assert.equal(h.body!(ex([])), null)
    const i = h.body!(ex(['content-type', 'application/json']))!
    assert.equal(i.write(Buffer.from('{"a":')), undefined)
    const r = i.write(Buffer.from('[1]}'))!
    assert.equal(r.status, 400)
    assert.equal(r.code, 'GH_ERR_JSON_THREAT')
    assert.match(r.body, /depth 2 exceeds maxDepth 1 at \$\.a/)

    const strict = jsonThreatProtection.create({ rejectNonJson: true }, ctx)
    assert.equal((strict.request!(ex(['content-type', 'text/plain'])) as { code: string }).code, 'GH_ERR_JSON_INVALID')
    assert.equal(strict.request!(ex(['content-type', 'application/json'])), undefined)
    assert.equal(strict.request!(ex([], false)), undefined, 'a request without a body passes')
  })

  test('malformed JSON is GH_ERR_JSON_INVALID at end, and a compressed body is refused', () => {
    const h = jsonThreatProtection.create({}, ctx)
    const i = h.body!(ex(['content-type', 'application/json']))!
    assert.equal(i.write(Buffer.from('{"a":1')), undefined)
    assert.equal(i.end()!.code, 'GH_ERR_JSON_INVALID')
    const gz = h.body!(ex(['content-type', 'application/json', 'content-encoding', 'gzip']))!
    assert.equal(gz.write(Buffer.from([0x1f, 0x8b]))!.code, 'GH_ERR_JSON_INVALID')
  })
})
