/**
 * An incremental JSON scanner: checks that a byte stream is one well-formed JSON text
 * (RFC 8259, the grammar JSON.parse accepts, over strict UTF-8) and that it stays inside
 * structure limits, without ever building the value. Fed chunk by chunk; every token may be
 * split anywhere (inside a number, a literal, an escape, a UTF-8 sequence), so all state
 * lives in fields and the verdict does not depend on where chunks are cut.
 *
 * What is counted:
 *  - depth: nesting of objects/arrays; `{}` at the top is depth 1, a top-level scalar 0;
 *  - entries: keys of one object (duplicates count twice; they are entries on the wire);
 *  - array size: elements of one array;
 *  - string and name length: in Unicode code points of the decoded string: one per
 *    unescaped character (a 4-byte UTF-8 emoji is 1), one per escape, and a `\uD83D\uDE00`
 *    surrogate pair of escapes is 1 (a lone surrogate escape is 1). A JS upstream sees
 *    `.length` in UTF-16 units, which is up to twice this for astral characters.
 *
 * A violation is reported at the byte that crosses the limit (the 11th opening bracket,
 * the 101st key's opening quote, the string's 65th character), so a huge string or array
 * is rejected while it streams. Invalid UTF-8 (overlong forms, encoded surrogates, bytes
 * above U+10FFFF) is malformed JSON here, where JSON.parse on a decoded string would have
 * seen U+FFFD instead. A BOM is malformed, as for JSON.parse.
 *
 * Memory: a few fields plus the nesting stack (5 bytes per open level, grown by doubling;
 * bounded by maxDepth) and 1.5 KiB for the keys of the first 32 levels, kept only to name
 * the location of a violation ("$.a.b[3]"). Nothing is allocated per token.
 *
 * @module
 * @example
 *   const s = new JsonScanner({ ...UNLIMITED, maxDepth: 10 })
 *   if (s.write(chunk) !== VERDICT_OK || s.end() !== VERDICT_OK) reject(s.verdict, s.detail)
 */

export interface JsonLimits {
  maxDepth: number
  maxEntriesPerObject: number
  maxNameLength: number
  maxArraySize: number
  maxStringLength: number
}

export const UNLIMITED: Readonly<JsonLimits> = Object.freeze({
  maxDepth: Infinity, maxEntriesPerObject: Infinity, maxNameLength: Infinity, maxArraySize: Infinity, maxStringLength: Infinity,
})

export const VERDICT_OK = 0
/** A structure limit was exceeded. */
export const VERDICT_THREAT = 1
/** Not well-formed JSON (or not UTF-8). */
export const VERDICT_INVALID = 2
export type Verdict = typeof VERDICT_OK | typeof VERDICT_THREAT | typeof VERDICT_INVALID

// ── states ──
const VALUE = 0        // a value must start (top level, after ':' or after ',' in an array)
const ARRAY_FIRST = 1  // after '[': a value or ']'
const OBJECT_FIRST = 2 // after '{': a key or '}'
const KEY = 3          // after ',' in an object: a key
const COLON = 4        // after a key
const AFTER = 5        // after a value: ',' or a closing bracket (only whitespace at the top)
const STR = 6
const ESC = 7          // after '\'
const HEX = 8          // inside \uXXXX
const UTF8 = 9         // inside a multi-byte UTF-8 sequence
const MINUS = 10
const ZERO = 11
const INT = 12
const DOT = 13
const FRAC = 14
const EXP_MARK = 15
const EXP_SIGN = 16
const EXP = 17
const LIT = 18
const FAILED = 19

const PATH_LEVELS = 32
const KEY_CAP = 48
const LIT_TRUE = Buffer.from('true')
const LIT_FALSE = Buffer.from('false')
const LIT_NULL = Buffer.from('null')

/** 1 for JSON whitespace (space, tab, LF, CR). */
const WS = new Uint8Array(256)
WS[0x20] = 1; WS[0x09] = 1; WS[0x0a] = 1; WS[0x0d] = 1
/** Hex digit value + 1 (0 = not a hex digit). */
const HEXV = new Uint8Array(256)
for (let i = 0; i < 10; i++) HEXV[0x30 + i] = i + 1
for (let i = 0; i < 6; i++) { HEXV[0x41 + i] = i + 11; HEXV[0x61 + i] = i + 11 }
/** 1 for ASCII bytes that stand for themselves inside a string (not '"', '\', not control). */
const PLAIN = new Uint8Array(256)
for (let i = 0x20; i < 0x80; i++) PLAIN[i] = i === 0x22 || i === 0x5c ? 0 : 1

export class JsonScanner {
  verdict: Verdict = VERDICT_OK
  /** Why the verdict is not OK ("depth 11 exceeds maxDepth 10 at $.a.b"); '' while OK. */
  detail = ''

  private state = VALUE
  /** Bytes consumed before the current chunk (for error offsets). */
  private base = 0
  private depth = 0
  /** Per open level: 1 = array, 0 = object. */
  private kinds = new Uint8Array(16)
  /** Per open level: elements or entries seen so far. */
  private counts = new Uint32Array(16)
  /** First KEY_CAP raw bytes of the current key of each of the first PATH_LEVELS levels. */
  private keys: Buffer | null = null
  private keyLens = new Uint8Array(PATH_LEVELS)
  // current string
  private strLen = 0
  private strMax = Infinity
  private strIsKey = false
  /** The previous character of this string was a high-surrogate escape. */
  private highEsc = false
  private hex = 0
  private hexN = 0
  private utf8Need = 0
  private utf8Lo = 0x80
  private utf8Hi = 0xbf
  private lit: Buffer = LIT_TRUE
  private litPos = 0

  constructor(private readonly limits: Readonly<JsonLimits>) {}

  /** Scans one chunk. Returns the verdict so far (sticky once not OK). */
  write(b: Uint8Array): Verdict {
    if (this.verdict !== VERDICT_OK) return this.verdict
    const n = b.length
    let st = this.state
    let i = 0
    while (i < n) {
      const c = b[i]!
      switch (st) {
        case STR: {
          if (PLAIN[c] === 1) {
            // Fast path: a run of plain ASCII characters.
            let len = this.strLen
            const max = this.strMax
            const key = this.strIsKey && this.depth <= PATH_LEVELS
            let j = i
            do {
              if (++len > max) { this.strLen = len; return this.tooLong() }
              if (key) this.keyByte(b[j]!)
              j++
            } while (j < n && PLAIN[b[j]!] === 1)
            this.strLen = len
            this.highEsc = false
            i = j
            continue
          }
          if (c === 0x22) {
            this.highEsc = false
            st = this.strIsKey ? COLON : AFTER
          } else if (c === 0x5c) {
            if (this.strIsKey && this.depth <= PATH_LEVELS) this.keyByte(c)
            st = ESC
          } else if (c < 0x20) {
            return this.invalid(this.base + i, 'control character in string')
          } else {
            // UTF-8 lead byte (Unicode Table 3-7, well-formed sequences only).
            if (c >= 0xc2 && c <= 0xdf) { this.utf8Need = 1; this.utf8Lo = 0x80; this.utf8Hi = 0xbf }
            else if (c === 0xe0) { this.utf8Need = 2; this.utf8Lo = 0xa0; this.utf8Hi = 0xbf }
            else if (c === 0xed) { this.utf8Need = 2; this.utf8Lo = 0x80; this.utf8Hi = 0x9f }
            else if (c >= 0xe1 && c <= 0xef) { this.utf8Need = 2; this.utf8Lo = 0x80; this.utf8Hi = 0xbf }
            else if (c === 0xf0) { this.utf8Need = 3; this.utf8Lo = 0x90; this.utf8Hi = 0xbf }
            else if (c >= 0xf1 && c <= 0xf3) { this.utf8Need = 3; this.utf8Lo = 0x80; this.utf8Hi = 0xbf }
            else if (c === 0xf4) { this.utf8Need = 3; this.utf8Lo = 0x80; this.utf8Hi = 0x8f }
            else return this.invalid(this.base + i, 'invalid UTF-8')
            this.highEsc = false
            if (++this.strLen > this.strMax) return this.tooLong()
            if (this.strIsKey && this.depth <= PATH_LEVELS) this.keyByte(c)
            st = UTF8
          }
          break
        }
        case UTF8:
          if (c < this.utf8Lo || c > this.utf8Hi) return this.invalid(this.base + i, 'invalid UTF-8')
          if (this.strIsKey && this.depth <= PATH_LEVELS) this.keyByte(c)
          this.utf8Lo = 0x80; this.utf8Hi = 0xbf
          if (--this.utf8Need === 0) st = STR
          break
        case ESC:
          if (this.strIsKey && this.depth <= PATH_LEVELS) this.keyByte(c)
          if (c === 0x75 /* u */) { this.hex = 0; this.hexN = 0; st = HEX; break }
          if (c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74) {
            this.highEsc = false
            if (++this.strLen > this.strMax) return this.tooLong()
            st = STR
            break
          }
          return this.invalid(this.base + i, 'invalid escape')
        case HEX: {
          const v = HEXV[c]!
          if (v === 0) return this.invalid(this.base + i, 'invalid \\u escape')
          if (this.strIsKey && this.depth <= PATH_LEVELS) this.keyByte(c)
          this.hex = this.hex * 16 + v - 1
          if (++this.hexN < 4) break
          const u = this.hex
          if (this.highEsc && u >= 0xdc00 && u <= 0xdfff) {
            this.highEsc = false // second half of a pair: the pair is one character
          } else {
            this.highEsc = u >= 0xd800 && u <= 0xdbff
            if (++this.strLen > this.strMax) return this.tooLong()
          }
          st = STR
          break
        }
        case VALUE:
          if (WS[c] === 1) break
          st = this.startValue(c, i)
          if (st === FAILED) return this.verdict
          break
        case ARRAY_FIRST:
          if (WS[c] === 1) break
          if (c === 0x5d /* ] */) { st = this.close(); break }
          if (!this.countElement()) return this.verdict
          st = this.startValue(c, i)
          if (st === FAILED) return this.verdict
          break
        case OBJECT_FIRST:
          if (WS[c] === 1) break
          if (c === 0x7d /* } */) { st = this.close(); break }
          if (c !== 0x22) return this.unexpected(i, c)
          if (!this.startKey()) return this.verdict
          st = STR
          break
        case KEY:
          if (WS[c] === 1) break
          if (c !== 0x22) return this.unexpected(i, c)
          if (!this.startKey()) return this.verdict
          st = STR
          break
        case COLON:
          if (WS[c] === 1) break
          if (c !== 0x3a) return this.unexpected(i, c)
          st = VALUE
          break
        case AFTER: {
          if (WS[c] === 1) break
          const d = this.depth
          if (d === 0) return this.unexpected(i, c)
          const isArray = this.kinds[d - 1] === 1
          if (c === 0x2c /* , */) {
            if (isArray) { if (!this.countElement()) return this.verdict; st = VALUE } else st = KEY
          } else if (c === (isArray ? 0x5d : 0x7d)) {
            st = this.close()
          } else return this.unexpected(i, c)
          break
        }
        case MINUS:
          if (c === 0x30) st = ZERO
          else if (c >= 0x31 && c <= 0x39) st = INT
          else return this.unexpected(i, c)
          break
        case ZERO:
          if (c === 0x2e) st = DOT
          else if (c === 0x65 || c === 0x45) st = EXP_MARK
          else { st = AFTER; continue } // the number ended: this byte belongs to what follows
          break
        case INT:
          if (c >= 0x30 && c <= 0x39) break
          if (c === 0x2e) st = DOT
          else if (c === 0x65 || c === 0x45) st = EXP_MARK
          else { st = AFTER; continue }
          break
        case DOT:
          if (c >= 0x30 && c <= 0x39) st = FRAC
          else return this.unexpected(i, c)
          break
        case FRAC:
          if (c >= 0x30 && c <= 0x39) break
          if (c === 0x65 || c === 0x45) st = EXP_MARK
          else { st = AFTER; continue }
          break
        case EXP_MARK:
          if (c === 0x2b || c === 0x2d) st = EXP_SIGN
          else if (c >= 0x30 && c <= 0x39) st = EXP
          else return this.unexpected(i, c)
          break
        case EXP_SIGN:
          if (c >= 0x30 && c <= 0x39) st = EXP
          else return this.unexpected(i, c)
          break
        case EXP:
          if (c >= 0x30 && c <= 0x39) break
          st = AFTER
          continue
        case LIT:
          if (c !== this.lit[this.litPos]) return this.unexpected(i, c)
          if (++this.litPos === this.lit.length) st = AFTER
          break
        default:
          return this.verdict
      }
      i++
    }
    this.state = st
    this.base += n
    return VERDICT_OK
  }

  /** The body ended: OK only if exactly one complete JSON text was seen. */
  end(): Verdict {
    if (this.verdict !== VERDICT_OK) return this.verdict
    const st = this.state
    if (this.depth === 0 && (st === AFTER || st === ZERO || st === INT || st === FRAC || st === EXP)) return VERDICT_OK
    this.verdict = VERDICT_INVALID
    this.detail = `unexpected end of JSON body at offset ${this.base}`
    return VERDICT_INVALID
  }

  // ── helpers (off the per-byte fast path) ──

  private startValue(c: number, i: number): number {
    switch (c) {
      case 0x7b: return this.open(0) ? OBJECT_FIRST : FAILED
      case 0x5b: return this.open(1) ? ARRAY_FIRST : FAILED
      case 0x22:
        this.strIsKey = false; this.strLen = 0; this.strMax = this.limits.maxStringLength; this.highEsc = false
        return STR
      case 0x2d: return MINUS
      case 0x30: return ZERO
      case 0x74: this.lit = LIT_TRUE; this.litPos = 1; return LIT
      case 0x66: this.lit = LIT_FALSE; this.litPos = 1; return LIT
      case 0x6e: this.lit = LIT_NULL; this.litPos = 1; return LIT
    }
    if (c >= 0x31 && c <= 0x39) return INT
    this.unexpected(i, c)
    return FAILED
  }

  private open(kind: number): boolean {
    const d = this.depth
    if (d + 1 > this.limits.maxDepth) {
      return this.threat(`depth ${d + 1} exceeds maxDepth ${this.limits.maxDepth} at ${this.path(d)}`)
    }
    if (d === this.kinds.length) {
      const k = new Uint8Array(d * 2); k.set(this.kinds); this.kinds = k
      const c = new Uint32Array(d * 2); c.set(this.counts); this.counts = c
    }
    this.kinds[d] = kind
    this.counts[d] = 0
    if (d < PATH_LEVELS) this.keyLens[d] = 0
    this.depth = d + 1
    return true
  }

  private close(): number {
    this.depth--
    return AFTER
  }

  private countElement(): boolean {
    const d = this.depth - 1
    const n = ++this.counts[d]!
    if (n > this.limits.maxArraySize) {
      return this.threat(`array size ${n} exceeds maxArraySize ${this.limits.maxArraySize} at ${this.path(d)}`)
    }
    return true
  }

  private startKey(): boolean {
    const d = this.depth - 1
    const n = ++this.counts[d]!
    if (n > this.limits.maxEntriesPerObject) {
      return this.threat(`object entries ${n} exceed maxEntriesPerObject ${this.limits.maxEntriesPerObject} at ${this.path(d)}`)
    }
    if (d < PATH_LEVELS) this.keyLens[d] = 0
    this.strIsKey = true; this.strLen = 0; this.strMax = this.limits.maxNameLength; this.highEsc = false
    return true
  }

  private keyByte(c: number): void {
    const d = this.depth - 1
    const len = this.keyLens[d]!
    if (len >= KEY_CAP) { if (len === KEY_CAP) this.keyLens[d] = KEY_CAP + 1; return }
    const keys = this.keys ?? (this.keys = Buffer.allocUnsafe(PATH_LEVELS * KEY_CAP))
    keys[d * KEY_CAP + len] = c
    this.keyLens[d] = len + 1
  }

  /** "$" plus the segments of the first `levels` open levels: `.key` or `[index]`. */
  private path(levels: number): string {
    let p = '$'
    for (let d = 0; d < levels; d++) {
      if (d >= PATH_LEVELS) return p + '…'
      if (this.kinds[d] === 1) { p += `[${this.counts[d]! - 1}]`; continue }
      const len = this.keyLens[d]!
      const key = this.keys === null ? '' : this.keys.toString('utf8', d * KEY_CAP, d * KEY_CAP + Math.min(len, KEY_CAP))
      p += '.' + key + (len > KEY_CAP ? '…' : '')
    }
    return p
  }

  private tooLong(): Verdict {
    if (this.strIsKey) {
      this.threat(`name length ${this.strLen} exceeds maxNameLength ${this.limits.maxNameLength} at ${this.path(this.depth - 1)}`)
    } else {
      this.threat(`string length ${this.strLen} exceeds maxStringLength ${this.limits.maxStringLength} at ${this.path(this.depth)}`)
    }
    return VERDICT_THREAT
  }

  /** Records a limit violation; returns false so callers can `return this.threat(...)`. */
  private threat(detail: string): false {
    this.verdict = VERDICT_THREAT
    this.detail = detail
    this.state = FAILED
    return false
  }

  private invalid(offset: number, what: string): Verdict {
    this.verdict = VERDICT_INVALID
    this.detail = `${what} at offset ${offset}`
    this.state = FAILED
    return VERDICT_INVALID
  }

  private unexpected(i: number, c: number): Verdict {
    return this.invalid(this.base + i, `unexpected byte 0x${c.toString(16).padStart(2, '0')}`)
  }
}
