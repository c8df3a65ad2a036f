/**
 * The measuring side of the backup benchmark, run as its own process by bench/backup.ts so that its
 * peak RSS belongs to this work alone. `node backup-child.js raw|backup BYTES` prints one JSON line.
 *
 * Input is one random 1 MiB block used over and over (made before timing; AES does not care), and
 * output goes nowhere, so neither the disk nor a generator is measured. Decryption is fed 1 MiB
 * pieces of the ciphertext, as a file read would; copying ciphertext into those pieces is the
 * "read" and is not timed. Only time inside the encrypt and decrypt calls counts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  createBackupDecryptor,
  createBackupEncryptor,
  createDecryptStream,
  createEncryptStream,
  generateBackupKey,
  nodeChunkCipher,
} from "@bkv/client/node";

export const CHUNK = 64 * 1024;
const BLOCK = 1 << 20;
const WARMUP = 32 << 20;

export interface ChildResult {
  mode: "raw" | "backup";
  bytes: number;
  /** Seconds spent encrypting / decrypting `bytes`. */
  encryptSeconds: number;
  decryptSeconds: number;
  /** Wall seconds for plaintext -> encrypt -> decrypt -> null through Node streams (backup only). */
  streamRoundTripSeconds?: number;
  /** process.resourceUsage().maxRSS at the end, in bytes. */
  maxRssBytes: number;
}

function blocks(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / BLOCK));
}

/** node:crypto AES-256-GCM, one cipher object per 64 KiB chunk, no format around it. */
function raw(bytes: number, block: Buffer): { enc: number; dec: number } {
  const key = randomBytes(32);
  const sealed: { ct: Buffer; tag: Buffer }[] = [];
  let enc = 0;
  let dec = 0;
  let counter = 0;
  for (let b = 0; b < blocks(bytes); b++) {
    const first = counter;
    let t = performance.now();
    for (let o = 0; o < BLOCK; o += CHUNK) {
      const nonce = Buffer.alloc(12);
      nonce.writeUInt32BE(counter++, 8);
      const c = createCipheriv("aes-256-gcm", key, nonce);
      const ct = c.update(block.subarray(o, o + CHUNK));
      c.final();
      sealed.push({ ct, tag: c.getAuthTag() });
    }
    enc += performance.now() - t;
    t = performance.now();
    for (let i = 0; i < sealed.length; i++) {
      const nonce = Buffer.alloc(12);
      nonce.writeUInt32BE(first + i, 8);
      const d = createDecipheriv("aes-256-gcm", key, nonce);
      d.setAuthTag(sealed[i]!.tag);
      d.update(sealed[i]!.ct);
      d.final();
    }
    dec += performance.now() - t;
    sealed.length = 0;
  }
  return { enc: enc / 1000, dec: dec / 1000 };
}

/** The backup encryptor and decryptor as encryptFile/decryptFile drive them, on node:crypto. */
async function backup(bytes: number, block: Buffer): Promise<{ enc: number; dec: number }> {
  const key = generateBackupKey();
  const encryptor = await createBackupEncryptor(key, { cipher: nodeChunkCipher, chunkSize: CHUNK });
  const decryptor = await createBackupDecryptor(key, { cipher: nodeChunkCipher });
  const staging = Buffer.allocUnsafe(BLOCK);
  let staged = 0;
  let enc = 0;
  let dec = 0;
  let plainOut = 0;
  const check = (parts: Uint8Array[]) => {
    for (const p of parts) {
      const at = plainOut % BLOCK;
      if (Buffer.compare(p, block.subarray(at, at + p.length)) !== 0) throw new Error("round trip mismatch");
      plainOut += p.length;
    }
  };
  const decrypt = async (piece: Uint8Array) => {
    const t = performance.now();
    const parts = await decryptor.push(piece);
    dec += performance.now() - t;
    check(parts);
  };
  const carry = async (parts: Uint8Array[]) => {
    for (const p of parts) {
      let off = 0;
      while (off < p.length) {
        const n = Math.min(p.length - off, BLOCK - staged);
        staging.set(p.subarray(off, off + n), staged);
        staged += n;
        off += n;
        if (staged === BLOCK) {
          await decrypt(staging);
          staged = 0;
        }
      }
    }
  };
  for (let b = 0; b < blocks(bytes); b++) {
    const t = performance.now();
    const parts = await encryptor.push(block);
    enc += performance.now() - t;
    await carry(parts);
  }
  let t = performance.now();
  const last = await encryptor.finish();
  enc += performance.now() - t;
  await carry(last);
  if (staged > 0) await decrypt(staging.subarray(0, staged));
  t = performance.now();
  check(await decryptor.finish());
  dec += performance.now() - t;
  if (plainOut !== blocks(bytes) * BLOCK) throw new Error("round trip lost data");
  return { enc: enc / 1000, dec: dec / 1000 };
}

/** Plaintext -> createEncryptStream -> createDecryptStream -> null, through pipeline(). */
async function streamRoundTrip(bytes: number, block: Buffer): Promise<number> {
  const key = generateBackupKey();
  let n = 0;
  const sink = new Writable({
    highWaterMark: BLOCK,
    write(chunk: Buffer, _e, cb) {
      n += chunk.length;
      cb();
    },
  });
  const count = blocks(bytes);
  const source = Readable.from(
    (function* () {
      for (let b = 0; b < count; b++) yield block;
    })(),
    { objectMode: false, highWaterMark: BLOCK },
  );
  const t = performance.now();
  await pipeline(source, createEncryptStream(key), createDecryptStream(key), sink);
  const seconds = (performance.now() - t) / 1000;
  if (n !== count * BLOCK) throw new Error("stream round trip lost data");
  return seconds;
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  const bytes = Number(process.argv[3]);
  if ((mode !== "raw" && mode !== "backup") || !(bytes > 0)) {
    throw new Error("usage: backup-child.js raw|backup BYTES");
  }
  const block = randomBytes(BLOCK);
  let result: ChildResult;
  if (mode === "raw") {
    raw(WARMUP, block);
    const r = raw(bytes, block);
    result = {
      mode,
      bytes: blocks(bytes) * BLOCK,
      encryptSeconds: r.enc,
      decryptSeconds: r.dec,
      maxRssBytes: 0,
    };
  } else {
    await backup(WARMUP, block);
    const r = await backup(bytes, block);
    const s = await streamRoundTrip(bytes, block);
    result = {
      mode,
      bytes: blocks(bytes) * BLOCK,
      encryptSeconds: r.enc,
      decryptSeconds: r.dec,
      streamRoundTripSeconds: s,
      maxRssBytes: 0,
    };
  }
  result.maxRssBytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`backup-child: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
