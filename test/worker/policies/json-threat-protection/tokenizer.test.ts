import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { JsonScanner, UNLIMITED, VERDICT_INVALID, VERDICT_OK, VERDICT_THREAT, type JsonLimits, type Verdict } from '../../../../src/worker/policies/json-threat-protection/tokenizer.js'

/** Scans `bytes` cut at `cuts` (sorted offsets); returns verdict and detail. */
function scan(bytes: Buffer, limits: Partial<JsonLimits> = {}, cuts: number[] = []): { verdict: Verdict; detail: string } {
  const s = new JsonScanner({ ...UNLIMITED, ...limits })
  let from = 0
  for (const c of [...cuts, bytes.length]) {
    if (s.write(bytes.subarray(from, c)) !== VERDICT_OK) return { verdict: s.verdict, detail: s.detail }
    from = c
  }
  s.end()
  return { verdict: s.verdict, detail: s.detail }
}
const text = (t: string, limits: Partial<JsonLimits> = {}) => scan(Buffer.from(t), limits)
function byteByByte(b: Buffer, limits: Partial<JsonLimits> = {}) {
  return scan(b, limits, Array.from({ length: Math.max(0, b.length - 1) }, (_, i) => i + 1))
}
function parses(t: string): boolean {
  try { JSON.parse(t); return true } catch { return false }
}

// ── a small seeded PRNG so failures reproduce ──
function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const CORPUS = [
  '', ' ', '{}', '[]', ' [ ] ', '[1,]', '{"a":1,}', '{,}', '[,1]', '01', '-0', '-', '1.', '.5', '1e', '1e+', '1E-5', '-0.0e-0',
  'tru', 'true', 'nulls', 'null', 'false', 'fals', 'True', 'NaN', 'Infinity', '-Infinity', '[-]', '[+1]', '0x10', '1.5e3',
  '[1e309]', '[.1]', '[1.e1]', '[-01]', '[1E+2]', '12 34', '1 ', ' 1', '"a"', '"', '"unterminated', "'a'",
  '"\\u00"', '"\\u12G4"', '"\\uD83D\\uDE00"', '"\\ud83d"', '"\\x"', '"\\U0041"', '"\\/"', '"\\"', '"\\\\"', '"\\b\\f\\n\\r\\t"',
  '"a\tb"', '"a\nb"', '"\u007f"', '"\u2028"', '"é"', '"😀"', '"\ufeff"', '\ufeff{}', '{"":""}', '[true,false,null]',
  '{"a":{"a":{"a":{}}}}', '["a"]]', '{]', '[}', '{"a":1}{"b":2}', '[1 2]', '{"a" 1}', '{"a":}', '{"a":1 "b":2}',
  '{"a":1,"a":2}', '{1:2}', '{"a":[{"b":null}]}', '[[[[[[]]]]]]', '[[[[[[]]]]]', '[1,[2,[3]],{"x":[]}]', '\t\r\n[\t\r\n]\t\r\n',
  '\u00a0[]', '[1]\u0000', '"\u0000"', '{"a":-}', '[0.]', '[00]', '[-1.2e-3]', '[1e5.5]', '{"a":true,}', '"\\u0000"',
]

describe('JSON tokenizer: validity agrees with JSON.parse', () => {
  for (const t of CORPUS) {
    test(`${JSON.stringify(t)} is ${parses(t) ? 'accepted' : 'rejected'} in one chunk and byte by byte`, () => {
      const want = parses(t) ? VERDICT_OK : VERDICT_INVALID
      assert.equal(text(t).verdict, want, text(t).detail)
      assert.equal(byteByByte(Buffer.from(t)).verdict, want)
    })
  }
})

describe('JSON tokenizer: strict UTF-8 inside strings', () => {
  const bad: Array<[string, number[]]> = [
    ['an overlong slash', [0x22, 0xc0, 0xaf, 0x22]],
    ['an encoded surrogate', [0x22, 0xed, 0xa0, 0x80, 0x22]],
    ['a code point above U+10FFFF', [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]],
    ['a stray continuation byte', [0x22, 0x80, 0x22]],
    ['0xFF', [0x22, 0xff, 0x22]],
    ['a truncated sequence', [0x22, 0xe2, 0x82, 0x22]],
    ['a non-ASCII byte outside a string', [0x5b, 0xc3, 0xa9, 0x5d]],
  ]
  for (const [name, bytes] of bad) {
    test(`${name} is malformed`, () => {
      assert.equal(scan(Buffer.from(bytes)).verdict, VERDICT_INVALID)
      assert.equal(byteByByte(Buffer.from(bytes)).verdict, VERDICT_INVALID)
    })
  }

  test('multi-byte sequences split at every position are accepted and counted as one character each', () => {
    const doc = Buffer.from('["é€😀"]')
    for (let cut = 1; cut < doc.length; cut++) {
      assert.equal(scan(doc, { maxStringLength: 3 }, [cut]).verdict, VERDICT_OK, `cut at ${cut}`)
      assert.equal(scan(doc, { maxStringLength: 2 }, [cut]).verdict, VERDICT_THREAT, `cut at ${cut}`)
    }
  })
})

describe('JSON tokenizer: limits at the boundary, with the location in the detail', () => {
  test('maxDepth counts the top-level container as 1 and names where the deepest one opens', () => {
    assert.equal(text('{"a":{"b":[]}}', { maxDepth: 3 }).verdict, VERDICT_OK)
    const r = text('{"a":{"b":{"c":1}}}', { maxDepth: 2 })
    assert.equal(r.verdict, VERDICT_THREAT)
    assert.equal(r.detail, 'depth 3 exceeds maxDepth 2 at $.a.b')
    assert.equal(text('[[[1]]]', { maxDepth: 2 }).detail, 'depth 3 exceeds maxDepth 2 at $[0][0]')
    assert.equal(text('"scalar"', { maxDepth: 0 }).verdict, VERDICT_OK)
    assert.equal(text('[]', { maxDepth: 0 }).detail, 'depth 1 exceeds maxDepth 0 at $')
  })

  test('maxEntriesPerObject counts keys of one object, duplicates included', () => {
    assert.equal(text('{"a":1,"b":{"c":1,"d":2}}', { maxEntriesPerObject: 2 }).verdict, VERDICT_OK)
    const r = text('{"x":{"a":1,"b":2,"c":3}}', { maxEntriesPerObject: 2 })
    assert.equal(r.detail, 'object entries 3 exceed maxEntriesPerObject 2 at $.x')
    assert.equal(text('{"a":1,"a":2,"a":3}', { maxEntriesPerObject: 2 }).verdict, VERDICT_THREAT)
  })

  test('maxArraySize counts elements of one array', () => {
    assert.equal(text('[1,2,[3,4]]', { maxArraySize: 3 }).verdict, VERDICT_OK)
    assert.equal(text('{"list":[[1,2,3,4]]}', { maxArraySize: 3 }).detail, 'array size 4 exceeds maxArraySize 3 at $.list[0]')
    assert.equal(text('[]', { maxArraySize: 0 }).verdict, VERDICT_OK)
    assert.equal(text('[1]', { maxArraySize: 0 }).verdict, VERDICT_THREAT)
  })

  test('maxNameLength counts key characters after unescaping', () => {
    assert.equal(text('{"abc":1,"\\u0041\\n":2}', { maxNameLength: 3 }).verdict, VERDICT_OK)
    assert.equal(text('{"o":{"abcd":1}}', { maxNameLength: 3 }).detail, 'name length 4 exceeds maxNameLength 3 at $.o')
  })

  test('maxStringLength counts code points: an emoji, a surrogate-pair escape and a lone surrogate are one each', () => {
    const ok = (t: string, n: number) => assert.equal(text(t, { maxStringLength: n }).verdict, VERDICT_OK, t)
    const over = (t: string, n: number) => assert.equal(text(t, { maxStringLength: n }).verdict, VERDICT_THREAT, t)
    ok('"😀"', 1); over('"😀😀"', 1)
    ok('"\\ud83d\\ude00"', 1); over('"\\ud83d\\ude00x"', 1)
    ok('"\\ud83d"', 1); over('"\\ud83d\\ud83d"', 1)
    ok('"\\ude00\\ud83d"', 2); over('"\\ude00\\ud83d"', 1)
    ok('"a\\nb"', 3); over('"a\\nb"', 2)
    ok('""', 0); over('"a"', 0)
    assert.equal(text('{"a":["x","long"]}', { maxStringLength: 3 }).detail, 'string length 4 exceeds maxStringLength 3 at $.a[1]')
    assert.equal(text('"long"', { maxStringLength: 3 }).detail, 'string length 4 exceeds maxStringLength 3 at $')
  })

  test('keys do not count against maxStringLength, nor values against maxNameLength', () => {
    assert.equal(text('{"longkey":"v"}', { maxStringLength: 1 }).verdict, VERDICT_OK)
    assert.equal(text('{"k":"longvalue"}', { maxNameLength: 1 }).verdict, VERDICT_OK)
  })

  test('a violation is reported before the body ends, where it happens', () => {
    const s = new JsonScanner({ ...UNLIMITED, maxStringLength: 5 })
    assert.equal(s.write(Buffer.from('["abcdef')), VERDICT_THREAT, 'rejected without waiting for the closing quote')
  })

  test('malformed JSON says where', () => {
    const r = text('{"a":1,}')
    assert.equal(r.verdict, VERDICT_INVALID)
    assert.equal(r.detail, 'unexpected byte 0x7d at offset 7')
    assert.equal(text('[1').detail, 'unexpected end of JSON body at offset 2')
  })

  test('long paths and keys are shortened, not stored whole', () => {
    const key = 'k'.repeat(100)
    const r = text(`{"${key}":[1,2,3]}`, { maxArraySize: 2 })
    assert.match(r.detail, /at \$\.k{48}…$/)
    const deep = '['.repeat(40) + ']'.repeat(40)
    assert.match(text(deep, { maxDepth: 35 }).detail, /^depth 36 exceeds maxDepth 35 at \$(\[0\]){32}…$/)
  })
})

// ── fuzz: random documents, random splits ──

function randomString(r: () => number): string {
  const pool = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', 'é', '€', '😀', '\ud83d', '\ude00', '\u2028', '0']
  let s = ''
  const n = Math.floor(r() * 8)
  for (let i = 0; i < n; i++) s += pool[Math.floor(r() * pool.length)]
  return s
}
function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 5 ? 4 : 7))
  switch (k) {
    case 0: return Math.floor((r() - 0.5) * 1e6)
    case 1: return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20)
    case 2: return randomString(r)
    case 3: return [true, false, null][Math.floor(r() * 3)]
    case 4: case 5: {
      const a: unknown[] = []
      const n = Math.floor(r() * 5)
      for (let i = 0; i < n; i++) a.push(randomValue(r, depth + 1))
      return a
    }
    default: {
      const o: Record<string, unknown> = {}
      const n = Math.floor(r() * 5)
      for (let i = 0; i < n; i++) o[randomString(r) + i] = randomValue(r, depth + 1)
      return o
    }
  }
}
/** JSON text with random whitespace between tokens and random escaping of strings. */
function render(v: unknown, r: () => number): string {
  const ws = () => [' ', '', '', '\n', '\t', '\r\n'][Math.floor(r() * 6)]
  const str = (s: string) => {
    let out = JSON.stringify(s)
    if (r() < 0.3) out = out.replace(/[^\x00-\x7f]/g, (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'))
    return out
  }
  if (Array.isArray(v)) return '[' + ws() + v.map((x) => render(x, r)).join(ws() + ',' + ws()) + ws() + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + ws() + Object.entries(v).map(([k, x]) => str(k) + ws() + ':' + ws() + render(x, r)).join(',' + ws()) + ws() + '}'
  }
  if (typeof v === 'string') return str(v)
  return JSON.stringify(v)
}
/** The limits a parsed value needs, computed independently of the scanner. */
function measure(v: unknown, depth = 0, m = { depth: 0, entries: 0, array: 0, name: 0, str: 0 }) {
  const cps = (s: string) => [...s].length
  if (typeof v === 'string') m.str = Math.max(m.str, cps(v))
  else if (Array.isArray(v)) {
    m.depth = Math.max(m.depth, depth + 1); m.array = Math.max(m.array, v.length)
    for (const x of v) measure(x, depth + 1, m)
  } else if (v !== null && typeof v === 'object') {
    m.depth = Math.max(m.depth, depth + 1); m.entries = Math.max(m.entries, Object.keys(v).length)
    for (const [k, x] of Object.entries(v)) { m.name = Math.max(m.name, cps(k)); measure(x, depth + 1, m) }
  }
  return m
}
function randomCuts(len: number, r: () => number): number[] {
  const cuts = new Set<number>()
  const n = Math.floor(r() * Math.min(len, 12))
  for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(r() * Math.max(1, len - 1)))
  return [...cuts].filter((c) => c < len).sort((a, b) => a - b)
}

describe('JSON tokenizer: fuzz', () => {
  test('random valid documents in random chunk splits are accepted, and limits give the verdict the parsed value predicts', () => {
    const r = prng(0x5eed)
    for (let n = 0; n < 1500; n++) {
      const v = randomValue(r, 0)
      const doc = Buffer.from(render(v, r))
      const m = measure(JSON.parse(doc.toString()))
      assert.equal(scan(doc, {}, randomCuts(doc.length, r)).verdict, VERDICT_OK, doc.toString())
      // Each limit exactly at what the document needs passes; one below fails.
      const exact = { maxDepth: m.depth, maxEntriesPerObject: m.entries, maxArraySize: m.array, maxNameLength: m.name, maxStringLength: m.str }
      assert.equal(scan(doc, exact, randomCuts(doc.length, r)).verdict, VERDICT_OK, `${doc} ${JSON.stringify(exact)}`)
      const keys = Object.keys(exact) as Array<keyof JsonLimits>
      const which = keys[Math.floor(r() * keys.length)]!
      if (exact[which] > 0) {
        const tight = { ...exact, [which]: exact[which] - 1 }
        const one = scan(doc, tight)
        assert.equal(one.verdict, VERDICT_THREAT, `${doc} ${JSON.stringify(tight)}`)
        assert.deepEqual(scan(doc, tight, randomCuts(doc.length, r)), one, 'same verdict and detail in any split')
      }
    }
  })

  test('mutated documents get the same verdict in any split, and the validity JSON.parse gives', () => {
    const r = prng(42)
    const alphabet = '{}[],:"\\ 0123456789-+.eEtrufalsn'
    let checked = 0
    for (let n = 0; n < 4000; n++) {
      let t = render(randomValue(r, 0), r)
      const edits = 1 + Math.floor(r() * 3)
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * (t.length + 1))
        const op = r()
        if (op < 0.4) t = t.slice(0, at) + t.slice(at + 1)
        else if (op < 0.8) t = t.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)] + t.slice(at)
        else t = t.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)] + t.slice(at + 1)
      }
      const doc = Buffer.from(t)
      // Only texts that survive a UTF-8 round trip compare with JSON.parse (lone surrogates do not).
      if (doc.toString() !== t) continue
      checked++
      const one = scan(doc)
      assert.equal(one.verdict, parses(t) ? VERDICT_OK : VERDICT_INVALID, t)
      assert.deepEqual(scan(doc, {}, randomCuts(doc.length, r)), one, t)
    }
    assert.ok(checked > 2000)
  })

  test('a 5 MB document scans in one pass without building it', () => {
    const item = JSON.stringify({ id: 123456, name: 'x'.repeat(40), tags: ['a', 'b', 'c'], nested: { ok: true, v: -1.5e-3 } })
    const parts: string[] = []
    let size = 1
    while (size < 5 * 1024 * 1024) { parts.push(item); size += item.length + 1 }
    const doc = Buffer.from('[' + parts.join(',') + ']')
    const cuts: number[] = []
    for (let c = 65536; c < doc.length; c += 65536) cuts.push(c)
    const t0 = performance.now()
    const r = scan(doc, { maxDepth: 3, maxArraySize: parts.length, maxStringLength: 40 }, cuts)
    const ms = performance.now() - t0
    assert.equal(r.verdict, VERDICT_OK, r.detail)
    assert.ok(ms < 2000, `took ${ms} ms`)
  })
})
