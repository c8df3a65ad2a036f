/**
 * Streaming backup decryption and verification in constant memory. Backup bytes go in through
 * push() in pieces of any size; plaintext comes out chunk by chunk, each chunk only after its tag
 * has been checked. finish() is the moment the whole backup is known to be complete: until it
 * returns, the output so far may be a prefix of what was backed up, so callers keep it out of reach
 * (decryptFile writes to a temporary file) until then.
 *
 * Every failure is a BkvError: WRONG_KEY (key id in the header is not this key's), TRUNCATED (the
 * input ended before the final chunk), AUTHENTICATION (a chunk's tag did not verify: altered,
 * reordered, spliced from another backup, or the header edited), MALFORMED (not a backup, an
 * unsupported version or chunk size, or bytes after the final chunk). After one, the decryptor
 * refuses further use.
 */
import { BkvError, bytesEqual, ErrorCode } from "@bkv/wire";
import {
  type ChunkCipher,
  type ChunkCipherFactory,
  GCM_TAG_SIZE,
  type MaybePromise,
  webCryptoCipher,
} from "./cipher.js";
import {
  BACKUP_HEADER_SIZE,
  type BackupHeader,
  CHUNK_FINAL,
  CHUNK_MORE,
  chunkAad,
  chunkNonce,
  decodeHeader,
  FILE_KEY_INFO,
  magicPrefixMatches,
  notABackup,
} from "./format.js";
import { assertBackupKey, backupKeyId } from "./key.js";
import { hkdfSha256 } from "./webcrypto.js";

export interface BackupDecryptOptions {
  /** The AEAD implementation; default WebCrypto. Node callers pass nodeChunkCipher. */
  cipher?: ChunkCipherFactory;
}

export interface BackupDecryptor {
  /**
   * Takes the next bytes of the backup; returns the plaintext now verified (possibly none). The
   * arrays returned are new, and `bytes` is not used after the promise settles. Calls must not
   * overlap: await each before the next.
   */
  push(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** Ends the input: throws TRUNCATED unless the final chunk has been read. Returns no more data. */
  finish(): Promise<Uint8Array[]>;
  /** The header, once read. */
  readonly header: BackupHeader | undefined;
  /** Backup bytes pushed so far. */
  readonly bytesIn: number;
  /** Plaintext bytes returned so far. */
  readonly bytesOut: number;
}

export async function createBackupDecryptor(
  key: Uint8Array,
  opts: BackupDecryptOptions = {},
): Promise<BackupDecryptor> {
  assertBackupKey(key);
  return new Decryptor(key.slice(), await backupKeyId(key), opts.cipher ?? webCryptoCipher);
}

/** Chunks opened concurrently within one push, for asynchronous (WebCrypto) ciphers. */
const MAX_IN_FLIGHT = 16;

type State = "header" | "type" | "length" | "body" | "done";
type Opened = MaybePromise<Uint8Array | BkvError>;

class Decryptor implements BackupDecryptor {
  private state: State = "header";
  private need = BACKUP_HEADER_SIZE;
  private asm = new Uint8Array(BACKUP_HEADER_SIZE);
  private asmLen = 0;
  private busy = false;
  private failure: BkvError | Error | undefined;
  private cipher: ChunkCipher | undefined;
  private aad: { more: Uint8Array; final: Uint8Array } | undefined;
  private chunkSize = 0;
  private index = 0;
  private final = false;
  private recordStart = 0;
  header: BackupHeader | undefined;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private key: Uint8Array | undefined,
    private readonly keyId: Uint8Array,
    private readonly factory: ChunkCipherFactory,
  ) {}

  async push(bytes: Uint8Array): Promise<Uint8Array[]> {
    this.enter("push");
    const results: Opened[] = [];
    const out: Uint8Array[] = [];
    try {
      try {
        await this.consume(bytes, results, out);
      } finally {
        // Report failures in stream order: a chunk that failed earlier wins over a later problem.
        await drain(results, out);
      }
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      this.busy = false;
    }
    for (const p of out) this.bytesOut += p.length;
    return out;
  }

  async finish(): Promise<Uint8Array[]> {
    this.enter("finish");
    try {
      if (this.state !== "done") throw this.truncated();
      return [];
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private enter(what: string): void {
    if (this.failure !== undefined) {
      throw new BkvError(ErrorCode.Invalid, `backup decryptor: ${what}() called after it failed`, {
        cause: this.failure,
      });
    }
    if (this.busy) throw new BkvError(ErrorCode.Invalid, `backup decryptor: ${what}() called while busy`);
    this.busy = true;
  }

  private async consume(bytes: Uint8Array, results: Opened[], out: Uint8Array[]): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      if (this.state === "done") {
        throw new BkvError(
          ErrorCode.Malformed,
          `the backup has data after its final chunk (from byte ${this.bytesIn + off}): bytes were appended to it`,
        );
      }
      const recordEnd = off + 1 + this.chunkSize + GCM_TAG_SIZE;
      if (this.state === "type" && bytes[off] === CHUNK_MORE && recordEnd <= bytes.length) {
        // Fast path: a whole non-final chunk in view.
        this.recordStart = this.bytesIn + off;
        this.final = false;
        const r = this.open(bytes.subarray(off + 1, recordEnd));
        off = recordEnd;
        results.push(r);
        if (r instanceof BkvError) return;
        if (results.length >= MAX_IN_FLIGHT) await drain(results, out);
        continue;
      }
      let piece: Uint8Array;
      if (this.asmLen === 0 && bytes.length - off >= this.need) {
        piece = bytes.subarray(off, off + this.need);
        off += this.need;
      } else {
        const take = Math.min(this.need - this.asmLen, bytes.length - off);
        this.asm.set(bytes.subarray(off, off + take), this.asmLen);
        this.asmLen += take;
        off += take;
        if (this.state === "header" && !magicPrefixMatches(this.asm.subarray(0, this.asmLen))) {
          throw notABackup();
        }
        if (this.asmLen < this.need) break;
        piece = this.asm.subarray(0, this.need);
        this.asmLen = 0;
      }
      const pieceStart = this.bytesIn + off - piece.length;
      switch (this.state) {
        case "header":
          await this.readHeader(piece);
          break;
        case "type":
          this.recordStart = pieceStart;
          if (piece[0] === CHUNK_MORE) this.expectBody(this.chunkSize, false);
          else if (piece[0] === CHUNK_FINAL) this.expect("length", 4);
          else {
            throw new BkvError(
              ErrorCode.Malformed,
              `chunk ${this.index} (at byte ${pieceStart}) has an unknown type byte ${piece[0]}: the backup is damaged`,
            );
          }
          break;
        case "length": {
          const n = new DataView(piece.buffer, piece.byteOffset, 4).getUint32(0);
          if (n > this.chunkSize) {
            throw new BkvError(
              ErrorCode.Malformed,
              `the final chunk (chunk ${this.index}, at byte ${this.recordStart}) claims ${n} bytes, more than the chunk size ${this.chunkSize}: the backup is damaged`,
            );
          }
          this.expectBody(n, true);
          break;
        }
        case "body": {
          const r = this.open(piece);
          results.push(r);
          if (r instanceof BkvError) return;
          if (results.length >= MAX_IN_FLIGHT) await drain(results, out);
          if (this.state === "body") this.expect("type", 1);
          break;
        }
      }
    }
    this.bytesIn += bytes.length;
  }

  private expect(state: State, need: number): void {
    this.state = state;
    this.need = need;
  }

  private expectBody(plaintextLength: number, final: boolean): void {
    this.final = final;
    this.expect("body", plaintextLength + GCM_TAG_SIZE);
    if (this.asm.length < this.need) this.asm = new Uint8Array(this.chunkSize + GCM_TAG_SIZE);
  }

  private async readHeader(bytes: Uint8Array): Promise<void> {
    const header = decodeHeader(bytes);
    if (!bytesEqual(header.keyId, this.keyId)) {
      throw new BkvError(
        ErrorCode.WrongKey,
        "this backup was made with a different backup key (the key id in its header does not match); use the key it was made with",
      );
    }
    const fileKey = await hkdfSha256(this.key!, header.salt, FILE_KEY_INFO, 32);
    this.key!.fill(0);
    this.key = undefined;
    this.cipher = await this.factory(fileKey);
    fileKey.fill(0);
    this.aad = chunkAad(bytes.slice());
    this.chunkSize = header.chunkSize;
    this.header = header;
    this.expect("type", 1);
  }

  /** Opens the chunk in `sealed`; failures come back as BkvError values, never as rejections. */
  private open(sealed: Uint8Array): Opened {
    const index = this.index++;
    const at = this.recordStart;
    const final = this.final;
    if (final) this.expect("done", 0);
    let r: MaybePromise<Uint8Array>;
    try {
      r = this.cipher!.open(chunkNonce(index), sealed, final ? this.aad!.final : this.aad!.more);
    } catch (e) {
      return authFailure(index, at, e);
    }
    return isPromise(r) ? r.catch((e: unknown) => authFailure(index, at, e)) : r;
  }

  private truncated(): BkvError {
    let msg: string;
    if (this.state === "header") {
      if (!magicPrefixMatches(this.asm.subarray(0, this.asmLen))) return notABackup();
      msg =
        this.bytesIn === 0
          ? "the backup is empty"
          : `the backup ends inside its header, after ${this.bytesIn} of ${BACKUP_HEADER_SIZE} bytes`;
    } else if (this.state === "type") {
      msg =
        this.index === 0
          ? `the backup ends right after its header (byte ${this.bytesIn}), before its first chunk`
          : `the backup ends after chunk ${this.index - 1} (the backup stops at byte ${this.bytesIn}) without its final chunk`;
    } else {
      msg = `the backup ends in the middle of chunk ${this.index} (which starts at byte ${this.recordStart})`;
    }
    return new BkvError(ErrorCode.Truncated, `${msg}: it was cut short, e.g. by an interrupted copy`);
  }
}

function authFailure(index: number, at: number, cause: unknown): BkvError {
  return new BkvError(
    ErrorCode.Authentication,
    `chunk ${index} (at byte ${at}) failed authentication: the backup was altered, its chunks were reordered, ` +
      "a chunk was spliced in from another backup, or its header was edited",
    { cause },
  );
}

function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === "function";
}

/** Moves opened chunks into out in order; throws the first failure. */
async function drain(results: Opened[], out: Uint8Array[]): Promise<void> {
  const all = results.splice(0);
  for (const r of all) {
    const v = isPromise(r) ? await r : r;
    if (v instanceof BkvError) throw v;
    if (v.length > 0) out.push(v);
  }
}
