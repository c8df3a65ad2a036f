/**
 * The log's leaf entry (what RFC 9162 hashes as a leaf, and what entries tiles carry):
 *
 *     "bkv-log-entry/v1" || 0x00          magic, 17 bytes
 *     u16 len || namespace                 printable ASCII, 1..255 bytes
 *     u32 epoch
 *     u32 len || artifact                  the fleet artifact, canonical bytes
 *     SHA-256(evidence)                    32 bytes; the evidence itself is served by digest
 *
 * All integers big-endian. The evidence (attestations, transcripts) goes in by digest because a
 * tlog-tiles entry is at most 65535 bytes and because clients verifying a bundle need only the
 * digest; monitors fetch it from the log and check the digest. Decoding is strict. The codec
 * lives here (@bkv/tlog re-exports it) so the HSM core can check an entry's inclusion.
 */
import { bytesEqual, concatBytes, fromUtf8, utf8 } from "./bytes.js";
import { TlogError, TlogErrorCode } from "./tlog-errors.js";
import { HASH_SIZE, leafHashWith, type TreeHash } from "./tlog-merkle.js";

/** The largest entry a tlog-tiles log holds (entries are length-prefixed with a u16). */
export const MAX_ENTRY_SIZE = 0xffff;

export const LOG_ENTRY_MAGIC = "bkv-log-entry/v1";

export interface LogEntry {
  readonly namespace: string;
  readonly epoch: number;
  readonly artifact: Uint8Array;
  readonly evidenceDigest: Uint8Array;
}

const MAGIC = concatBytes(utf8(LOG_ENTRY_MAGIC), new Uint8Array([0]));
const NAMESPACE = /^[\x21-\x7e]{1,255}$/;
const FIXED = MAGIC.length + 2 + 4 + 4 + HASH_SIZE;

/** The largest artifact an entry can hold with this namespace. */
export function maxArtifactSize(namespace: string): number {
  return MAX_ENTRY_SIZE - FIXED - namespace.length;
}

function bad(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadEntry, `log entry: ${message}`);
}

export function isValidNamespace(namespace: string): boolean {
  return NAMESPACE.test(namespace);
}

export function isValidEpoch(epoch: number): boolean {
  return Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xffffffff;
}

export function encodeLogEntry(e: LogEntry): Uint8Array {
  if (!isValidNamespace(e.namespace)) throw bad("the namespace must be 1..255 printable ASCII characters");
  if (!isValidEpoch(e.epoch)) throw bad(`bad epoch ${e.epoch}`);
  if (e.evidenceDigest.length !== HASH_SIZE) throw bad("the evidence digest is 32 bytes");
  if (e.artifact.length > maxArtifactSize(e.namespace)) {
    throw bad(
      `the artifact is ${e.artifact.length} bytes, more than the ${maxArtifactSize(e.namespace)} that fit`,
    );
  }
  const out = new Uint8Array(FIXED + e.namespace.length + e.artifact.length);
  const dv = new DataView(out.buffer);
  let o = 0;
  out.set(MAGIC, o);
  o += MAGIC.length;
  dv.setUint16(o, e.namespace.length);
  o += 2;
  out.set(utf8(e.namespace), o);
  o += e.namespace.length;
  dv.setUint32(o, e.epoch);
  o += 4;
  dv.setUint32(o, e.artifact.length);
  o += 4;
  out.set(e.artifact, o);
  o += e.artifact.length;
  out.set(e.evidenceDigest, o);
  return out;
}

export function decodeLogEntry(b: Uint8Array): LogEntry {
  if (b.length < FIXED + 1 || b.length > MAX_ENTRY_SIZE) throw bad(`impossible length ${b.length}`);
  if (!bytesEqual(b.subarray(0, MAGIC.length), MAGIC)) throw bad("wrong magic");
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  let o = MAGIC.length;
  const nsLen = dv.getUint16(o);
  o += 2;
  if (o + nsLen + 8 > b.length) throw bad("truncated namespace");
  let namespace: string;
  try {
    namespace = fromUtf8(b.subarray(o, o + nsLen));
  } catch {
    throw bad("the namespace is not UTF-8");
  }
  if (!isValidNamespace(namespace)) throw bad("the namespace must be 1..255 printable ASCII characters");
  o += nsLen;
  const epoch = dv.getUint32(o);
  o += 4;
  const artLen = dv.getUint32(o);
  o += 4;
  if (o + artLen + HASH_SIZE !== b.length) throw bad("the artifact length does not match the entry");
  const artifact = b.slice(o, o + artLen);
  o += artLen;
  return { namespace, epoch, artifact, evidenceDigest: b.slice(o) };
}

/** The RFC 9162 leaf hash of this entry, with the hash passed in: what an inclusion proof starts from. */
export function logEntryLeafHashWith(hash: TreeHash, e: LogEntry): Uint8Array {
  return leafHashWith(hash, encodeLogEntry(e));
}
