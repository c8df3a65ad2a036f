/**
 * The backup file layout, shared by the encryptor and the decryptor.
 *
 *   header (49 bytes, all of it authenticated as associated data of every chunk):
 *     magic "BKVB" (4) | version = 1 (u8) | key id (8) | salt (32, random) | chunk size (u32 BE)
 *   chunks, in order, numbered from 0:
 *     non-final: type 0x00 (u8) | AES-256-GCM(chunk size bytes) | tag (16)
 *     final:     type 0x01 (u8) | plaintext length (u32 BE, 0..chunk size) | AES-256-GCM(...) | tag (16)
 *
 * Each chunk is sealed under the per-file key HKDF-SHA256(K, salt, "bkv backup file v1") with the
 * nonce = chunk number as 12 bytes big-endian, and associated data = header || last-chunk flag (one
 * byte, 0 or 1): the STREAM construction. Reordering, dropping, or moving chunks between backups
 * breaks a tag; cutting the stream short leaves no final chunk. The clear type byte and final length
 * only say where chunks end, so a cut-off backup is reported as truncated rather than as altered;
 * the flag they repeat is authenticated through the associated data. The encryptor always ends with
 * a final chunk shorter than the chunk size (empty when the input fills whole chunks); readers
 * accept any final length up to the chunk size.
 */
import { BkvError, ErrorCode } from "@bkv/wire";
import { GCM_NONCE_SIZE, GCM_TAG_SIZE } from "./cipher.js";
import { KEY_ID_SIZE } from "./key.js";

export const BACKUP_MAGIC = Uint8Array.of(0x42, 0x4b, 0x56, 0x42); // "BKVB"
export const BACKUP_VERSION = 1;
export const SALT_SIZE = 32;
export const BACKUP_HEADER_SIZE = 4 + 1 + KEY_ID_SIZE + SALT_SIZE + 4;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const MIN_CHUNK_SIZE = 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

/** Chunk type bytes. */
export const CHUNK_MORE = 0x00;
export const CHUNK_FINAL = 0x01;
/** Bytes a non-final / final chunk adds to its plaintext. */
export const CHUNK_OVERHEAD = 1 + GCM_TAG_SIZE;
export const FINAL_CHUNK_OVERHEAD = 1 + 4 + GCM_TAG_SIZE;

export const FILE_KEY_INFO = "bkv backup file v1";

/** Field offsets in the header, for tools and tests. */
export const HeaderOffset = {
  magic: 0,
  version: 4,
  keyId: 5,
  salt: 5 + KEY_ID_SIZE,
  chunkSize: 5 + KEY_ID_SIZE + SALT_SIZE,
} as const;

export interface BackupHeader {
  version: number;
  keyId: Uint8Array;
  salt: Uint8Array;
  chunkSize: number;
}

export function chunkSizeAllowed(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE;
}

export function encodeHeader(h: BackupHeader): Uint8Array {
  const out = new Uint8Array(BACKUP_HEADER_SIZE);
  out.set(BACKUP_MAGIC, HeaderOffset.magic);
  out[HeaderOffset.version] = h.version;
  out.set(h.keyId, HeaderOffset.keyId);
  out.set(h.salt, HeaderOffset.salt);
  new DataView(out.buffer).setUint32(HeaderOffset.chunkSize, h.chunkSize);
  return out;
}

/** True while `prefix` (up to 4 bytes) could still be the start of a backup file. */
export function magicPrefixMatches(prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length && i < BACKUP_MAGIC.length; i++) {
    if (prefix[i] !== BACKUP_MAGIC[i]) return false;
  }
  return true;
}

export function notABackup(): BkvError {
  return new BkvError(
    ErrorCode.Malformed,
    "not a bkv backup file (it does not start with the bkv backup magic)",
  );
}

/** Parses and checks the 49 header bytes; MALFORMED for anything this version cannot read. */
export function decodeHeader(bytes: Uint8Array): BackupHeader {
  if (bytes.length !== BACKUP_HEADER_SIZE) {
    throw new BkvError(ErrorCode.Malformed, `a backup header is ${BACKUP_HEADER_SIZE} bytes`);
  }
  if (!magicPrefixMatches(bytes)) throw notABackup();
  const version = bytes[HeaderOffset.version]!;
  if (version !== BACKUP_VERSION) {
    throw new BkvError(
      ErrorCode.Malformed,
      `unsupported backup format version ${version} (this program reads version ${BACKUP_VERSION})`,
    );
  }
  const chunkSize = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(
    HeaderOffset.chunkSize,
  );
  if (!chunkSizeAllowed(chunkSize)) {
    throw new BkvError(
      ErrorCode.Malformed,
      `the backup header gives a chunk size of ${chunkSize} bytes, outside the allowed ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`,
    );
  }
  return {
    version,
    keyId: bytes.slice(HeaderOffset.keyId, HeaderOffset.keyId + KEY_ID_SIZE),
    salt: bytes.slice(HeaderOffset.salt, HeaderOffset.salt + SALT_SIZE),
    chunkSize,
  };
}

/** The associated data of non-final and final chunks: header || flag. */
export function chunkAad(header: Uint8Array): { more: Uint8Array; final: Uint8Array } {
  const more = new Uint8Array(header.length + 1);
  more.set(header);
  const final = more.slice();
  final[header.length] = 1;
  return { more, final };
}

/** Nonce for chunk `index`: the index as a 12-byte big-endian integer. */
export function chunkNonce(index: number): Uint8Array {
  const n = new Uint8Array(GCM_NONCE_SIZE);
  let v = index;
  for (let i = GCM_NONCE_SIZE - 1; v > 0; i--) {
    n[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return n;
}

/** The exact size of the backup of `plaintextLength` bytes as this encryptor writes it. */
export function backupSize(plaintextLength: number, chunkSize = DEFAULT_CHUNK_SIZE): number {
  const full = Math.floor(plaintextLength / chunkSize);
  return BACKUP_HEADER_SIZE + full * CHUNK_OVERHEAD + FINAL_CHUNK_OVERHEAD + plaintextLength;
}
