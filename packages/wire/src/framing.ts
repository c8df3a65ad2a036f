/**
 * Length-prefixed framing (u32 big-endian length, then the frame) for byte streams such as the pipe
 * between a host agent and its HSM process. Pure: works on Uint8Array chunks.
 *
 * Every decoder has a cap. A length above it is refused as soon as its 4-byte header arrives, before
 * any of the frame is buffered: either with MALFORMED (the default: the stream is dropped) or, with
 * `skipOversized`, by discarding the frame's bytes as they pass and counting it (the HSM process,
 * which must not exit or lose its state because of what its host sends).
 */
import { BkvError, ErrorCode } from "./errors.js";

/** The biggest frame the HSM process reads from its host (see hsm-api.ts for the caps inside). */
export const MAX_FRAME_BYTES = 256 << 20;

export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** Several frames back to back in one buffer: each payload copied once, one write for all of them. */
export function frames(payloads: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of payloads) total += 4 + p.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const p of payloads) {
    view.setUint32(o, p.length);
    out.set(p, o + 4);
    o += 4 + p.length;
  }
  return out;
}

/**
 * Frames queued while one piece of work runs and written together when it is done: one write (one
 * system call on a pipe or socket) per turn of the event loop instead of one per frame. Order is
 * kept; nothing is reordered, only delayed to the end of the turn. `schedule` runs `flush` later
 * (Node: setImmediate); `write` gets the frames, length-prefixed, in one buffer.
 */
export class FrameBatch {
  private queued: Uint8Array[] = [];
  private bytes = 0;

  constructor(
    private readonly write: (bytes: Uint8Array) => void,
    private readonly schedule: (flush: () => void) => void,
  ) {}

  /** Bytes queued and not yet written (length prefixes included). */
  get queuedBytes(): number {
    return this.bytes;
  }

  push(payload: Uint8Array): void {
    if (this.queued.length === 0) this.schedule(() => this.flush());
    this.queued.push(payload);
    this.bytes += 4 + payload.length;
  }

  /** Write what is queued now (also called by the scheduled flush; a no-op when nothing is). */
  flush(): void {
    if (this.queued.length === 0) return;
    const out = frames(this.queued);
    this.queued = [];
    this.bytes = 0;
    this.write(out);
  }

  /** Drop what is queued (its reader is gone). */
  discard(): void {
    this.queued = [];
    this.bytes = 0;
  }
}

export interface FrameDecoderOptions {
  /** The largest frame (payload bytes) accepted; default MAX_FRAME_BYTES. */
  maxFrame?: number;
  /** Skip and count frames over the cap instead of throwing. */
  skipOversized?: boolean;
}

/** Feed stream chunks in, get whole frames out. Buffers at most one frame plus the chunk pushed. */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Bytes still to discard of an oversized frame being skipped. */
  private skipping = 0;
  private readonly maxFrame: number;
  private readonly skipOversized: boolean;
  /** Oversized frames refused (skipped, or the one that made push throw). */
  refused = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrame = options.maxFrame ?? MAX_FRAME_BYTES;
    this.skipOversized = options.skipOversized ?? false;
  }

  /** Bytes held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, chunk.length);
      this.skipping -= n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = new DataView(head.buffer, head.byteOffset).getUint32(0);
      if (len > this.maxFrame) {
        this.refused++;
        if (!this.skipOversized) {
          this.chunks = [];
          this.buffered = 0;
          throw new BkvError(
            ErrorCode.Malformed,
            `frame of ${len} bytes is over the cap of ${this.maxFrame}`,
          );
        }
        // Drop the header and whatever of the frame is here; discard the rest as it arrives.
        const here = Math.min(this.buffered - 4, len);
        this.drop(4 + here);
        this.skipping = len - here;
        continue;
      }
      if (this.buffered < 4 + len) break;
      const all = this.take(4 + len);
      out.push(all.subarray(4));
    }
    return out;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.flatten().subarray(0, n);
  }

  private flatten(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const all = new Uint8Array(this.buffered);
    let o = 0;
    for (const c of this.chunks) {
      all.set(c, o);
      o += c.length;
    }
    this.chunks = [all];
    return all;
  }

  private drop(n: number): void {
    const all = this.flatten();
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
  }

  private take(n: number): Uint8Array {
    const all = this.flatten();
    const out = all.slice(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}
