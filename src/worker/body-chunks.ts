/**
 * Recycled buffers for request body chunks streamed upstream. uWS hands a body over in
 * chunks of up to 512 KiB that must be copied before its callback returns (§3.5); a fresh
 * buffer per chunk is external memory V8 answers with full mark-compacts (measured: a
 * quarter of a worker's CPU on 1 MiB POSTs). These slabs go back to a free list once the
 * upstream client wrote them, so steady streaming allocates nothing.
 *
 * Only the streaming path takes them (proxy.ts RequestBody, not in hold mode), and only
 * our HTTP/1.1 client gives them back, from the socket write's callback: after that, nothing
 * references the chunk (the Readable emitted it and let it go). Chunks that take another
 * path (undici for https://, a destroyed body) are never given back and are collected.
 *
 * @module
 */
import { copyChunk } from './uws.js'

const SLAB = 512 * 1024
/** Smaller chunks come from Node's own pool or are cheap enough. */
const MIN = 16 * 1024
/** Free slabs kept per worker (8 MiB). */
const MAX_FREE = 16

const free: ArrayBuffer[] = []
const lent = new WeakSet<Buffer>()

/** A copy of a uWS body chunk, in a recycled slab when the size suits. */
export function takeChunk(ab: ArrayBuffer): Buffer {
  const n = ab.byteLength
  if (n < MIN || n > SLAB) return copyChunk(ab)
  const b = Buffer.from(free.pop() ?? new ArrayBuffer(SLAB), 0, n)
  b.set(new Uint8Array(ab))
  lent.add(b)
  return b
}

/** The chunk is written and referenced nowhere else: its slab may serve the next one. */
export function giveBack(b: Buffer): void {
  if (!lent.delete(b)) return
  if (free.length < MAX_FREE) free.push(b.buffer as ArrayBuffer)
}
