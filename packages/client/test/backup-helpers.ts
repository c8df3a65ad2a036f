/** Test helpers for the backup tests: splitting a backup into its header and chunk records. */
import { BACKUP_HEADER_SIZE, GCM_TAG_SIZE } from "../src/backup/index.js";

export interface Parsed {
  header: Uint8Array;
  /** Each chunk record whole: type byte, (final length,) ciphertext, tag. */
  records: Uint8Array[];
}

/** Splits a well-formed backup made with `chunkSize`. */
export function splitBackup(backup: Uint8Array, chunkSize: number): Parsed {
  const header = backup.slice(0, BACKUP_HEADER_SIZE);
  const records: Uint8Array[] = [];
  let off = BACKUP_HEADER_SIZE;
  while (off < backup.length) {
    const type = backup[off]!;
    let len: number;
    if (type === 0) len = 1 + chunkSize + GCM_TAG_SIZE;
    else {
      const n = new DataView(backup.buffer, backup.byteOffset + off + 1, 4).getUint32(0);
      len = 5 + n + GCM_TAG_SIZE;
    }
    records.push(backup.slice(off, off + len));
    off += len;
  }
  return { header, records };
}

export function join(header: Uint8Array, records: Uint8Array[]): Uint8Array {
  let n = header.length;
  for (const r of records) n += r.length;
  const out = new Uint8Array(n);
  out.set(header);
  let o = header.length;
  for (const r of records) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}

/** Deterministic test data (not random, so failures reproduce). */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Byte equality, fast for large arrays (vitest's toEqual walks them element by element). */
export function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}
