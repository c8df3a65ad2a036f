/**
 * Streaming backup encryption in constant memory: bytes go in through push() in pieces of any size,
 * the backup comes out as byte arrays to be written in order (header, then each chunk as a type
 * byte, ciphertext and tag). Whole chunks inside a pushed array are encrypted in place, without a
 * copy; only a chunk that straddles two pushes is assembled in a buffer of one chunk.
 */
import { BkvError, ErrorCode } from "@bkv/wire";
import { type ChunkCipher, type ChunkCipherFactory, type MaybePromise, webCryptoCipher } from "./cipher.js";
import {
  BACKUP_VERSION,
  CHUNK_FINAL,
  CHUNK_MORE,
  chunkAad,
  chunkNonce,
  chunkSizeAllowed,
  DEFAULT_CHUNK_SIZE,
  encodeHeader,
  FILE_KEY_INFO,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  SALT_SIZE,
} from "./format.js";
import { assertBackupKey, backupKeyId } from "./key.js";
import { hkdfSha256 } from "./webcrypto.js";

export interface BackupEncryptOptions {
  /** Plaintext bytes per chunk, MIN_CHUNK_SIZE..MAX_CHUNK_SIZE; default 64 KiB. */
  chunkSize?: number;
  /** The AEAD implementation; default WebCrypto. Node callers pass nodeChunkCipher. */
  cipher?: ChunkCipherFactory;
}

export interface BackupEncryptor {
  /**
   * Encrypts the next bytes of the input; returns the backup bytes now ready (possibly none). The
   * arrays returned are new, and `bytes` is not used after the promise settles, so callers may reuse
   * their buffer. Calls must not overlap: await each before the next.
   */
  push(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** Ends the input and returns the rest of the backup, ending with the final chunk. */
  finish(): Promise<Uint8Array[]>;
  /** Plaintext bytes pushed so far. */
  readonly bytesIn: number;
  /** Backup bytes returned so far. */
  readonly bytesOut: number;
}

/** Chunks sealed concurrently within one push, for asynchronous (WebCrypto) ciphers. */
const MAX_IN_FLIGHT = 16;

export async function createBackupEncryptor(
  key: Uint8Array,
  opts: BackupEncryptOptions = {},
): Promise<BackupEncryptor> {
  assertBackupKey(key);
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!chunkSizeAllowed(chunkSize)) {
    throw new BkvError(
      ErrorCode.Invalid,
      `chunk size must be an integer from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE} bytes, got ${chunkSize}`,
    );
  }
  const salt = globalThis.crypto.getRandomValues(new Uint8Array(SALT_SIZE));
  const [keyId, fileKey] = await Promise.all([backupKeyId(key), hkdfSha256(key, salt, FILE_KEY_INFO, 32)]);
  const header = encodeHeader({ version: BACKUP_VERSION, keyId, salt, chunkSize });
  const cipher = await (opts.cipher ?? webCryptoCipher)(fileKey);
  fileKey.fill(0);
  return new Encryptor(cipher, header, chunkSize);
}

class Encryptor implements BackupEncryptor {
  private readonly aad: { more: Uint8Array; final: Uint8Array };
  private pending: Uint8Array | undefined;
  private pendingLen = 0;
  private index = 0;
  private headerSent = false;
  private state: "open" | "busy" | "finished" | "failed" = "open";
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private readonly cipher: ChunkCipher,
    private readonly header: Uint8Array,
    private readonly chunkSize: number,
  ) {
    this.aad = chunkAad(header);
  }

  async push(bytes: Uint8Array): Promise<Uint8Array[]> {
    this.enter("push");
    try {
      const out = this.start();
      const sealed: MaybePromise<Uint8Array[]>[] = [];
      let inFlight = 0;
      const cs = this.chunkSize;
      let off = 0;
      if (this.pendingLen > 0) {
        const take = Math.min(cs - this.pendingLen, bytes.length);
        this.pending!.set(bytes.subarray(0, take), this.pendingLen);
        this.pendingLen += take;
        off = take;
        if (this.pendingLen === cs) {
          sealed.push(this.seal(this.pending!, false));
          this.pendingLen = 0;
        }
      }
      while (bytes.length - off >= cs) {
        const s = this.seal(bytes.subarray(off, off + cs), false);
        sealed.push(s);
        off += cs;
        if (isPromise(s) && ++inFlight >= MAX_IN_FLIGHT) {
          await collect(sealed, out, true);
          inFlight = 0;
        }
      }
      if (off < bytes.length) {
        this.pending ??= new Uint8Array(cs);
        this.pending.set(bytes.subarray(off), this.pendingLen);
        this.pendingLen += bytes.length - off;
      }
      await collect(sealed, out, true);
      this.bytesIn += bytes.length;
      return this.leave(out);
    } catch (e) {
      this.state = "failed";
      throw e;
    }
  }

  async finish(): Promise<Uint8Array[]> {
    this.enter("finish");
    try {
      const out = this.start();
      const last = this.pending === undefined ? new Uint8Array(0) : this.pending.subarray(0, this.pendingLen);
      const prefix = new Uint8Array(5);
      prefix[0] = CHUNK_FINAL;
      new DataView(prefix.buffer).setUint32(1, last.length);
      out.push(prefix);
      await collect([this.seal(last, true)], out, false);
      this.pending = undefined;
      this.pendingLen = 0;
      const result = this.leave(out);
      this.state = "finished";
      return result;
    } catch (e) {
      this.state = "failed";
      throw e;
    }
  }

  private enter(what: string): void {
    if (this.state !== "open") {
      throw new BkvError(ErrorCode.Invalid, `backup encryptor: ${what}() called while ${this.state}`);
    }
    this.state = "busy";
  }

  private leave(out: Uint8Array[]): Uint8Array[] {
    for (const p of out) this.bytesOut += p.length;
    this.state = "open";
    return out;
  }

  private start(): Uint8Array[] {
    if (this.headerSent) return [];
    this.headerSent = true;
    return [this.header];
  }

  private seal(plaintext: Uint8Array, final: boolean): MaybePromise<Uint8Array[]> {
    const nonce = chunkNonce(this.index++);
    return this.cipher.seal(nonce, plaintext, final ? this.aad.final : this.aad.more);
  }
}

function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === "function";
}

/** Moves sealed chunks (in order) into out, each preceded by the type byte when `more`. */
async function collect(
  sealed: MaybePromise<Uint8Array[]>[],
  out: Uint8Array[],
  more: boolean,
): Promise<void> {
  for (const s of sealed) {
    const parts = isPromise(s) ? await s : s;
    if (more) out.push(Uint8Array.of(CHUNK_MORE));
    for (const p of parts) out.push(p);
  }
  sealed.length = 0;
}
