/**
 * Streams one request body into an upstream socket: as is after a Content-Length head,
 * chunk-framed otherwise, pausing the body while the socket is full. Each chunk written is
 * given back to the slab pool from its write callback (body-chunks.ts).
 *
 * @module
 */
import type net from 'node:net'
import type { Readable } from 'node:stream'
import { giveBack } from '../body-chunks.js'

export interface BodyWriterEvents {
  /** A chunk went to the socket: the upstream is still receiving. */
  progress(): void
  /** The whole body went out. */
  done(): void
  /** The body was destroyed before its end: the request cannot complete. */
  cut(): void
}

export class BodyWriter {
  private detached = false

  constructor(private readonly body: Readable, private readonly socket: net.Socket, private readonly chunked: boolean,
    private readonly events: BodyWriterEvents) {
    body.on('data', this.onData)
    body.on('end', this.onEnd)
    body.on('close', this.onClose)
    body.on('error', this.onError)
  }

  private onData = (chunk: Buffer): void => {
    const s = this.socket
    let ok: boolean
    if (this.chunked) {
      s.cork()
      s.write(chunk.length.toString(16) + '\r\n', 'latin1')
      s.write(chunk, () => giveBack(chunk))
      ok = s.write('\r\n', 'latin1')
      s.uncork()
    } else {
      ok = s.write(chunk, () => giveBack(chunk))
    }
    this.events.progress()
    if (!ok) { this.body.pause(); s.once('drain', this.onDrain) }
  }

  private onDrain = (): void => { if (!this.detached) this.body.resume() }

  private onEnd = (): void => {
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1')
    this.detach()
    this.events.done()
  }

  private onClose = (): void => {
    if (this.detached) return
    this.detach()
    this.events.cut()
  }

  private onError = (): void => { /* 'close' follows and decides */ }

  /** Stops listening (the request ended, or the body did). */
  detach(): void {
    if (this.detached) return
    this.detached = true
    const b = this.body
    b.off('data', this.onData)
    b.off('end', this.onEnd)
    b.off('close', this.onClose)
    b.off('error', this.onError)
    this.socket.off('drain', this.onDrain)
  }
}
