/**
 * Encrypting a file into a backup file and back, streaming in constant memory. The output is written
 * to a temporary file beside the destination (mode 0600) and renamed into place only once complete
 * (for restores: once every chunk and the end of the backup have been verified); on any error or
 * abort the temporary file is deleted, so no partial backup or unverified plaintext is left behind.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, link, open, rename, rm, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { BkvError, ErrorCode } from "@bkv/wire";
import {
  type ChunkCipherFactory,
  createBackupDecryptor,
  createBackupEncryptor,
  DEFAULT_CHUNK_SIZE,
} from "../backup/index.js";
import { nodeChunkCipher } from "./cipher.js";

export interface FileOptions {
  /** Called after each block read with input bytes processed so far and the input's size. */
  onProgress?: (done: number, total: number) => void;
  /** Replace an existing output file (atomically, at the end). Default false: refuse. */
  overwrite?: boolean;
  /** Stops the work; the temporary file is removed and the call rejects with the abort reason. */
  signal?: AbortSignal;
  /** The AEAD implementation; default node:crypto. */
  cipher?: ChunkCipherFactory;
}

export interface EncryptFileOptions extends FileOptions {
  /** Plaintext bytes per chunk; default 64 KiB. */
  chunkSize?: number;
}

export interface FileResult {
  bytesIn: number;
  bytesOut: number;
}

/** Read size: a whole number of chunks near 1 MiB, so chunks are encrypted straight from the buffer. */
const READ_TARGET = 1 << 20;

export async function encryptFile(
  key: Uint8Array,
  inPath: string,
  outPath: string,
  opts: EncryptFileOptions = {},
): Promise<FileResult> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const readSize = Math.max(1, Math.round(READ_TARGET / chunkSize)) * chunkSize;
  return transformFile(inPath, outPath, opts, readSize, () =>
    createBackupEncryptor(key, { cipher: opts.cipher ?? nodeChunkCipher, chunkSize }),
  );
}

/**
 * Restores a backup file. Rejects with the decryptor's BkvError (WRONG_KEY, TRUNCATED,
 * AUTHENTICATION, MALFORMED), and then outPath is untouched.
 */
export async function decryptFile(
  key: Uint8Array,
  inPath: string,
  outPath: string,
  opts: FileOptions = {},
): Promise<FileResult> {
  return transformFile(inPath, outPath, opts, READ_TARGET, () =>
    createBackupDecryptor(key, { cipher: opts.cipher ?? nodeChunkCipher }),
  );
}

interface Streaming {
  push(bytes: Uint8Array): Promise<Uint8Array[]>;
  finish(): Promise<Uint8Array[]>;
}

async function transformFile(
  inPath: string,
  outPath: string,
  opts: FileOptions,
  readSize: number,
  make: () => Promise<Streaming>,
): Promise<FileResult> {
  const overwrite = opts.overwrite ?? false;
  opts.signal?.throwIfAborted();
  const input = await open(inPath, "r");
  let output: FileHandle | undefined;
  let tmp: string | undefined;
  try {
    const inStat = await input.stat();
    const outStat = await stat(outPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (outStat !== undefined) {
      if (outStat.dev === inStat.dev && outStat.ino === inStat.ino) {
        throw new BkvError(ErrorCode.Invalid, "the input and output are the same file");
      }
      if (!overwrite) throw exists(outPath);
    }
    const total = inStat.isFile() ? inStat.size : Number.NaN;
    const inner = await make();
    tmp = join(dirname(outPath), `.${basename(outPath)}.${randomBytes(6).toString("hex")}.partial`);
    const tmpPath = tmp;
    output = await open(tmpPath, "wx", 0o600).catch((e: NodeJS.ErrnoException) => {
      // Name the file the caller asked for, not our temporary one.
      if (e.path === tmpPath) {
        e.path = outPath;
        e.message = e.message.replace(tmpPath, outPath);
      }
      throw e;
    });
    const { bytesIn, bytesOut } = await pump(input, output, inner, readSize, opts, total);
    opts.signal?.throwIfAborted();
    await output.sync();
    await output.close();
    output = undefined;
    await place(tmp, outPath, overwrite);
    tmp = undefined;
    await syncDir(dirname(outPath));
    return { bytesIn, bytesOut };
  } finally {
    await input.close().catch(() => undefined);
    if (output !== undefined) await output.close().catch(() => undefined);
    if (tmp !== undefined) await rm(tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * Reads, transforms and writes with the I/O overlapped: the next block is read and the previous
 * output written (on libuv's threads) while this block is encrypted or decrypted. Two read buffers,
 * at most one write in flight, so memory stays at a few MiB.
 */
async function pump(
  input: FileHandle,
  output: FileHandle,
  inner: Streaming,
  readSize: number,
  opts: FileOptions,
  total: number,
): Promise<FileResult> {
  const bufs = [Buffer.allocUnsafe(readSize), Buffer.allocUnsafe(readSize)] as const;
  let bytesIn = 0;
  let bytesOut = 0;
  let reading = input.read(bufs[0], 0, readSize, null);
  let writing: Promise<number> = Promise.resolve(0);
  try {
    for (let i = 0; ; i++) {
      opts.signal?.throwIfAborted();
      const { bytesRead, buffer } = await reading;
      if (bytesRead === 0) break;
      // The other buffer is free: push() keeps no reference to its input once it has resolved.
      reading = input.read(bufs[(i + 1) % 2]!, 0, readSize, null);
      bytesIn += bytesRead;
      const parts = await inner.push(buffer.subarray(0, bytesRead));
      bytesOut += await writing;
      writing = writeAll(output, parts);
      opts.onProgress?.(bytesIn, total);
    }
    const parts = await inner.finish();
    bytesOut += await writing;
    bytesOut += await writeAll(output, parts);
    return { bytesIn, bytesOut };
  } finally {
    // On an error, let the I/O in flight finish before the caller closes the files.
    await Promise.allSettled([reading, writing]);
  }
}

async function writeAll(fh: FileHandle, parts: Uint8Array[]): Promise<number> {
  if (parts.length === 0) return 0;
  let n = 0;
  for (const p of parts) n += p.length;
  // libuv writes every buffer (looping over short writes and IOV_MAX); check anyway.
  const { bytesWritten } = await fh.writev(parts);
  if (bytesWritten !== n) throw new Error(`short write: ${bytesWritten} of ${n} bytes`);
  return n;
}

function exists(path: string): BkvError {
  return new BkvError(ErrorCode.Invalid, `${path} already exists (not replacing it)`);
}

/** Moves the finished temporary file to its name; without overwrite, never replaces a file. */
async function place(tmp: string, outPath: string, overwrite: boolean): Promise<void> {
  if (overwrite) {
    await rename(tmp, outPath);
    return;
  }
  try {
    await link(tmp, outPath); // fails with EEXIST instead of replacing
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw exists(outPath);
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw e;
    // A file system without hard links: check, then rename (a small race, nothing better exists).
    if (
      await stat(outPath).then(
        () => true,
        () => false,
      )
    )
      throw exists(outPath);
    await rename(tmp, outPath);
    return;
  }
  await unlink(tmp);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r").catch(() => undefined);
  if (fh === undefined) return;
  await fh.sync().catch(() => undefined);
  await fh.close().catch(() => undefined);
}
