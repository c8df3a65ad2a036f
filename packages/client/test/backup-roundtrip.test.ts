import { hkdfSync } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCode } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import {
  BACKUP_HEADER_SIZE,
  BACKUP_MAGIC,
  BackupHeaderOffset,
  backupDecryptStream,
  backupEncryptStream,
  backupSize,
  type ChunkCipherFactory,
  createBackupDecryptor,
  createBackupEncryptor,
  DEFAULT_CHUNK_SIZE,
  decodeBackupHeader,
  decryptBytes,
  encryptBytes,
  generateBackupKey,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  webCryptoCipher,
} from "../src/backup/index.js";
import { createDecryptStream, createEncryptStream, nodeChunkCipher } from "../src/node/index.js";
import { pattern, same, splitBackup } from "./backup-helpers.js";

const CS = 1024;
const SIZES = [0, 1, CS - 1, CS, CS + 1, 3 * CS, 5 * CS + 17];
const CIPHERS: [string, ChunkCipherFactory][] = [
  ["webcrypto", webCryptoCipher],
  ["node", nodeChunkCipher],
];

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Feeds `data` to push() in pieces of the given sizes (cycling), then finish(). */
async function feed(
  s: { push(b: Uint8Array): Promise<Uint8Array[]>; finish(): Promise<Uint8Array[]> },
  data: Uint8Array,
  pieces: number[],
): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = pieces[i % pieces.length]!;
    out.push(...(await s.push(data.subarray(off, off + n))));
    off += n;
  }
  out.push(...(await s.finish()));
  return concat(out);
}

describe("backup round trips", () => {
  for (const [encName, encCipher] of CIPHERS) {
    for (const [decName, decCipher] of CIPHERS) {
      it(`encrypts with ${encName} and decrypts with ${decName}, sizes ${SIZES.join(", ")}`, async () => {
        const key = generateBackupKey();
        for (const n of SIZES) {
          const pt = pattern(n, n);
          const backup = await encryptBytes(key, pt, { chunkSize: CS, cipher: encCipher });
          expect(backup.length).toBe(backupSize(n, CS));
          expect(same(await decryptBytes(key, backup, { cipher: decCipher }), pt)).toBe(true);
        }
      });
    }
  }

  it("ends with one final chunk shorter than the chunk size (empty for 0 and whole chunks)", async () => {
    const key = generateBackupKey();
    for (const n of SIZES) {
      const { records } = splitBackup(await encryptBytes(key, pattern(n), { chunkSize: CS }), CS);
      expect(records.length).toBe(Math.floor(n / CS) + 1);
      for (const r of records.slice(0, -1)) expect(r[0]).toBe(0);
      expect(records.at(-1)![0]).toBe(1);
      expect(records.at(-1)!.length).toBe(5 + (n % CS) + 16);
    }
  });

  it("gives the same result however the input is split across push() calls", async () => {
    const key = generateBackupKey();
    const pt = pattern(7 * CS + 300);
    for (const [name, cipher] of CIPHERS) {
      for (const pieces of [[1], [7, 1500, 3], [CS], [CS - 1], [CS + 1], [4 * CS], [pt.length]]) {
        const backup = await feed(await createBackupEncryptor(key, { chunkSize: CS, cipher }), pt, pieces);
        expect(backup.length, `${name} ${pieces}`).toBe(backupSize(pt.length, CS));
        expect(same(await decryptBytes(key, backup), pt)).toBe(true);
        const back = await feed(await createBackupDecryptor(key, { cipher }), backup, pieces);
        expect(same(back, pt), `${name} ${pieces}`).toBe(true);
      }
    }
  });

  it("streams: each chunk comes out as soon as it is in, and memory holds at most one chunk", async () => {
    const key = generateBackupKey();
    const pt = pattern(4 * CS + 10);
    const enc = await createBackupEncryptor(key, { chunkSize: CS, cipher: nodeChunkCipher });
    const first = await enc.push(pt.subarray(0, CS - 1));
    expect(concat(first).length).toBe(BACKUP_HEADER_SIZE); // header only; the partial chunk waits
    const second = await enc.push(pt.subarray(CS - 1, 2 * CS));
    expect(concat(second).length).toBe(2 * (1 + CS + 16));
    const rest = concat([...(await enc.push(pt.subarray(2 * CS))), ...(await enc.finish())]);
    const backup = concat([...first, ...second, rest]);
    const { header, records } = splitBackup(backup, CS);
    const dec = await createBackupDecryptor(key, { cipher: nodeChunkCipher });
    expect(await dec.push(header)).toEqual([]);
    expect(dec.header?.chunkSize).toBe(CS);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      expect(await dec.push(r.subarray(0, r.length - 1))).toEqual([]); // not verified yet
      const out = concat(await dec.push(r.subarray(r.length - 1)));
      expect(same(out, pt.subarray(i * CS, (i + 1) * CS))).toBe(true);
    }
    expect(await dec.finish()).toEqual([]);
    expect(dec.bytesIn).toBe(backup.length);
    expect(dec.bytesOut).toBe(pt.length);
    expect(enc.bytesIn).toBe(pt.length);
    expect(enc.bytesOut).toBe(backup.length);
  });

  it("does not keep references to the caller's buffer after push() returns", async () => {
    const key = generateBackupKey();
    const pt = pattern(10 * CS + 5);
    const enc = await createBackupEncryptor(key, { chunkSize: CS, cipher: nodeChunkCipher });
    const buf = new Uint8Array(3 * CS + 1);
    const parts: Uint8Array[] = [];
    for (let off = 0; off < pt.length; off += buf.length) {
      const piece = pt.subarray(off, off + buf.length);
      buf.set(piece);
      parts.push(...(await enc.push(buf.subarray(0, piece.length))));
      buf.fill(0xee);
    }
    parts.push(...(await enc.finish()));
    const backup = concat(parts);
    const dec = await createBackupDecryptor(key, { cipher: nodeChunkCipher });
    const out: Uint8Array[] = [];
    for (let off = 0; off < backup.length; off += buf.length) {
      const piece = backup.subarray(off, off + buf.length);
      buf.set(piece);
      out.push(...(await dec.push(buf.subarray(0, piece.length))));
      buf.fill(0xee);
    }
    out.push(...(await dec.finish()));
    expect(same(concat(out), pt)).toBe(true);
  });

  it("uses the default 64 KiB chunk size and a fresh salt per backup", async () => {
    const key = generateBackupKey();
    const pt = pattern(DEFAULT_CHUNK_SIZE * 2 + 1);
    const a = await encryptBytes(key, pt, { cipher: nodeChunkCipher });
    const b = await encryptBytes(key, pt, { cipher: nodeChunkCipher });
    const ha = decodeBackupHeader(a.subarray(0, BACKUP_HEADER_SIZE));
    const hb = decodeBackupHeader(b.subarray(0, BACKUP_HEADER_SIZE));
    expect(ha.chunkSize).toBe(DEFAULT_CHUNK_SIZE);
    expect(ha.salt).not.toEqual(hb.salt);
    expect(ha.keyId).toEqual(hb.keyId);
    expect(a.subarray(0, 4)).toEqual(BACKUP_MAGIC);
    expect(same(a.subarray(BACKUP_HEADER_SIZE), b.subarray(BACKUP_HEADER_SIZE))).toBe(false);
    expect(same(await decryptBytes(key, a, { cipher: nodeChunkCipher }), pt)).toBe(true);
  });

  it("seals chunk i under HKDF(K, salt, 'bkv backup file v1') with nonce i and AAD header || flag", async () => {
    const { createDecipheriv } = await import("node:crypto");
    const key = generateBackupKey();
    const pt = pattern(2 * CS + 10);
    const backup = await encryptBytes(key, pt, { chunkSize: CS });
    const { header, records } = splitBackup(backup, CS);
    const salt = header.subarray(BackupHeaderOffset.salt, BackupHeaderOffset.salt + 32);
    const fileKey = Buffer.from(hkdfSync("sha256", key, salt, "bkv backup file v1", 32));
    const out: Buffer[] = [];
    records.forEach((r, i) => {
      const final = r[0] === 1;
      const body = r.subarray(final ? 5 : 1);
      const nonce = Buffer.alloc(12);
      nonce.writeUInt32BE(i, 8);
      const d = createDecipheriv("aes-256-gcm", fileKey, nonce);
      d.setAAD(Buffer.concat([header, Uint8Array.of(final ? 1 : 0)]));
      d.setAuthTag(body.subarray(body.length - 16));
      out.push(d.update(body.subarray(0, body.length - 16)), d.final());
    });
    expect(same(Buffer.concat(out), pt)).toBe(true);
  });

  it("accepts chunk sizes from 1 KiB to 16 MiB and refuses others", async () => {
    const key = generateBackupKey();
    for (const chunkSize of [MIN_CHUNK_SIZE, 4096 + 3, MAX_CHUNK_SIZE]) {
      const pt = pattern(2 * MIN_CHUNK_SIZE + 1);
      const backup = await encryptBytes(key, pt, { chunkSize, cipher: nodeChunkCipher });
      expect(same(await decryptBytes(key, backup, { cipher: nodeChunkCipher }), pt)).toBe(true);
    }
    for (const chunkSize of [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, 1.5 * 1024 + 0.5, -1]) {
      await expect(createBackupEncryptor(key, { chunkSize })).rejects.toMatchObject({
        code: ErrorCode.Invalid,
      });
    }
  });

  it("refuses keys that are not 32 bytes", async () => {
    await expect(createBackupEncryptor(new Uint8Array(16))).rejects.toMatchObject({
      code: ErrorCode.Invalid,
    });
    await expect(createBackupDecryptor(new Uint8Array(0))).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it("refuses push() after finish()", async () => {
    const enc = await createBackupEncryptor(generateBackupKey());
    await enc.finish();
    await expect(enc.push(new Uint8Array(1))).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it("round-trips through WHATWG TransformStreams", async () => {
    const key = generateBackupKey();
    const pt = pattern(9 * CS + 123);
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        for (let o = 0; o < pt.length; o += 700) c.enqueue(pt.slice(o, o + 700));
        c.close();
      },
    });
    const out = source
      .pipeThrough(backupEncryptStream(key, { chunkSize: CS }))
      .pipeThrough(backupDecryptStream(key));
    const parts: Uint8Array[] = [];
    const reader = out.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
    expect(same(concat(parts), pt)).toBe(true);
  });

  it("errors a WHATWG decrypt stream with the BkvError", async () => {
    const key = generateBackupKey();
    const backup = await encryptBytes(key, pattern(3 * CS), { chunkSize: CS });
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(backup.slice(0, backup.length - 30));
        c.close();
      },
    });
    const reader = source.pipeThrough(backupDecryptStream(key)).getReader();
    const read = async () => {
      for (;;) if ((await reader.read()).done) return;
    };
    await expect(read()).rejects.toMatchObject({ code: ErrorCode.Truncated });
  });

  it("round-trips through Node Transform streams", async () => {
    const key = generateBackupKey();
    const pt = pattern(200_000);
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        parts.push(chunk);
        cb();
      },
    });
    const source = Readable.from(
      (function* () {
        for (let o = 0; o < pt.length; o += 3000) yield Buffer.from(pt.subarray(o, o + 3000));
      })(),
    );
    await pipeline(source, createEncryptStream(key, { chunkSize: CS }), createDecryptStream(key), sink);
    expect(same(Buffer.concat(parts), pt)).toBe(true);
  });

  it("fails a Node pipeline with the BkvError", async () => {
    const key = generateBackupKey();
    const backup = await encryptBytes(key, pattern(3 * CS), { chunkSize: CS });
    const sink = new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });
    await expect(
      pipeline(Readable.from([Buffer.from(backup)]), createDecryptStream(generateBackupKey()), sink),
    ).rejects.toMatchObject({ code: ErrorCode.WrongKey });
  });
});
