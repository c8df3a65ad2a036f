/**
 * A minimal canonical binary encoding for every message in the system: fixed-width big-endian
 * integers and length-prefixed byte strings, read in a fixed order. A Reader rejects short input,
 * oversized lengths and trailing bytes, so every decoder built on it is strict by construction.
 */
import { fromUtf8, utf8 } from "./bytes.js";
import { check } from "./errors.js";

export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    this.reserve(4);
    new DataView(this.buf.buffer).setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  /** Integers up to 2^53 - 1, encoded in 8 bytes. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.reserve(8);
    const dv = new DataView(this.buf.buffer);
    dv.setUint32(this.len, Math.floor(v / 2 ** 32));
    dv.setUint32(this.len + 4, v >>> 0);
    this.len += 8;
    return this;
  }

  /** Raw bytes of a length both sides know. */
  fixed(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** Length-prefixed (u32) bytes. */
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    return this.fixed(b);
  }

  string(s: string): this {
    return this.bytes(utf8(s));
  }

  list<T>(items: readonly T[], each: (w: Writer, item: T) => void): this {
    this.u32(items.length);
    for (const it of items) each(this, it);
    return this;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export class Reader {
  private off = 0;

  constructor(
    private readonly buf: Uint8Array,
    /** Names the message in errors, e.g. "vault request". */
    private readonly what: string,
  ) {}

  private need(n: number, field: string): void {
    check(this.off + n <= this.buf.length, `${this.what}: too short to hold ${field}`);
  }

  u8(field = "a byte"): number {
    this.need(1, field);
    return this.buf[this.off++]!;
  }

  u32(field = "a 32-bit integer"): number {
    this.need(4, field);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(this.off);
    this.off += 4;
    return v;
  }

  u64(field = "a 64-bit integer"): number {
    this.need(8, field);
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset);
    const hi = dv.getUint32(this.off);
    const lo = dv.getUint32(this.off + 4);
    check(hi < 2 ** 21, `${this.what}: ${field} is too large`);
    this.off += 8;
    return hi * 2 ** 32 + lo;
  }

  /** Up to n bytes ahead, without consuming them. */
  peek(n: number): Uint8Array {
    return this.buf.slice(this.off, Math.min(this.off + n, this.buf.length));
  }

  fixed(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.buf.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }

  /** Length-prefixed bytes, at most max long. */
  bytes(field: string, max = 1 << 24): Uint8Array {
    const n = this.u32(`the length of ${field}`);
    check(n <= max, `${this.what}: ${field} is ${n} bytes, more than the ${max} allowed`);
    return this.fixed(n, field);
  }

  /** Length-prefixed bytes of exactly n bytes. */
  sized(field: string, n: number): Uint8Array {
    const b = this.bytes(field, n);
    check(b.length === n, `${this.what}: ${field} must be ${n} bytes, got ${b.length}`);
    return b;
  }

  string(field: string, max = 1024): string {
    return fromUtf8(this.bytes(field, max));
  }

  list<T>(field: string, max: number, each: (r: Reader) => T): T[] {
    const n = this.u32(`the count of ${field}`);
    check(n <= max, `${this.what}: ${n} ${field}, more than the ${max} allowed`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(this));
    return out;
  }

  /** Call last: the message must be fully consumed. */
  end(): void {
    check(
      this.off === this.buf.length,
      `${this.what}: ${this.buf.length - this.off} unexpected trailing bytes`,
    );
  }
}
