/**
 * NVRAM in a file, written like a real NVRAM's double buffer: two fixed slots, each with a sequence
 * number and a SHA-256 checksum; a write goes to the older slot with pwrite + fdatasync (no rename,
 * no directory sync), and a read takes the valid slot with the higher sequence. A write torn by a
 * crash leaves the other slot intact.
 *
 * A slot holds one of two records: the core's NVRAM (magic "BKVS", what read/write see), or the
 * platform's *life record* (magic "BKVK", writeLife/readRecord): written with new identity keys,
 * before any core has written NVRAM, it names those keys so that they survive a restart while NVRAM
 * is otherwise empty. It is NVRAM like the core's record: the core's first write replaces it (the
 * newest slot wins), and wiping the NVRAM file wipes it.
 */
import { createHash } from "node:crypto";
import { closeSync, fdatasyncSync, openSync, readSync, writeSync } from "node:fs";

const SLOT = 512;
const CORE_MAGIC = Buffer.from("BKVS");
const LIFE_MAGIC = Buffer.from("BKVK");
const HEADER = 4 + 8 + 2;
const MAX_DATA = SLOT - HEADER - 32;

export type NvramRecord = { kind: "core" | "life"; data: Uint8Array };

function checksum(body: Buffer): Buffer {
  return createHash("sha256").update(body).digest();
}

type Slot = { seq: number; kind: NvramRecord["kind"]; data: Buffer; raw: Buffer };

function parseSlot(slot: Buffer): Slot | null {
  if (slot.length < SLOT) return null;
  const magic = slot.subarray(0, 4);
  const kind = magic.equals(CORE_MAGIC) ? "core" : magic.equals(LIFE_MAGIC) ? "life" : null;
  if (kind === null) return null;
  const seq = Number(slot.readBigUInt64BE(4));
  const len = slot.readUInt16BE(12);
  if (len > MAX_DATA) return null;
  const body = slot.subarray(0, HEADER + len);
  if (!checksum(body).equals(slot.subarray(HEADER + len, HEADER + len + 32))) return null;
  return { seq, kind, data: Buffer.from(slot.subarray(HEADER, HEADER + len)), raw: Buffer.from(slot) };
}

/** Thrown when the NVRAM file changed under this handle: another process writes the same HSM's NVRAM. */
export class NvramConflictError extends Error {}

export class NvramFile {
  private fd: number;
  private seq = 0;
  /** The newest slot this handle read at open or wrote since (what the file must still hold). */
  private last: Buffer | null;

  constructor(path: string) {
    this.fd = openSync(path, "a+", 0o600);
    closeSync(this.fd);
    this.fd = openSync(path, "r+");
    const current = this.readBoth();
    this.seq = current?.seq ?? 0;
    this.last = current?.raw ?? null;
  }

  private readBoth(): Slot | null {
    const buf = Buffer.alloc(2 * SLOT);
    const n = readSync(this.fd, buf, 0, buf.length, 0);
    const a = n >= SLOT ? parseSlot(buf.subarray(0, SLOT)) : null;
    const b = n >= 2 * SLOT ? parseSlot(buf.subarray(SLOT, 2 * SLOT)) : null;
    if (a === null) return b;
    if (b === null) return a;
    return a.seq >= b.seq ? a : b;
  }

  /** The newest record, of either kind (null: NVRAM is empty). */
  readRecord(): NvramRecord | null {
    const r = this.readBoth();
    return r === null ? null : { kind: r.kind, data: new Uint8Array(r.data) };
  }

  /** The core's NVRAM: null while it has written none (empty, or only the life record). */
  read(): Uint8Array | null {
    const r = this.readRecord();
    return r?.kind === "core" ? r.data : null;
  }

  write(data: Uint8Array): void {
    this.writeSlot(CORE_MAGIC, data);
  }

  /** The platform's life record (see the top of this file). */
  writeLife(life: Uint8Array): void {
    this.writeSlot(LIFE_MAGIC, life);
  }

  private writeSlot(magic: Buffer, data: Uint8Array): void {
    if (data.length > MAX_DATA) throw new Error(`NVRAM holds at most ${MAX_DATA} bytes`);
    // One HSM, one writer: if the newest slot is not the one this handle read or wrote last, another
    // process holds this HSM's identity and NVRAM (its folder lock was broken). Write nothing: the
    // HSM stops rather than act on NVRAM it no longer knows (a second genesis, a cloned voter).
    const now = this.readBoth();
    const same = now === null ? this.last === null : this.last !== null && now.raw.equals(this.last);
    if (!same) {
      throw new NvramConflictError(
        "NVRAM changed under this HSM process: another process is using this HSM's identity; stopping",
      );
    }
    this.seq += 1;
    const slot = Buffer.alloc(SLOT);
    magic.copy(slot, 0);
    slot.writeBigUInt64BE(BigInt(this.seq), 4);
    slot.writeUInt16BE(data.length, 12);
    Buffer.from(data.buffer, data.byteOffset, data.length).copy(slot, HEADER);
    checksum(slot.subarray(0, HEADER + data.length)).copy(slot, HEADER + data.length);
    writeSync(this.fd, slot, 0, SLOT, (this.seq % 2) * SLOT);
    fdatasyncSync(this.fd);
    this.last = slot;
  }

  close(): void {
    closeSync(this.fd);
  }
}
