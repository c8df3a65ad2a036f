/**
 * The log's leaf entry: the codec is @bkv/wire's (tlog-log-entry.ts); this adds the digests with
 * this library's SHA-256.
 */
import { type LogEntry, logEntryLeafHashWith } from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";

export {
  decodeLogEntry,
  encodeLogEntry,
  isValidEpoch,
  isValidNamespace,
  LOG_ENTRY_MAGIC,
  type LogEntry,
  maxArtifactSize,
} from "@bkv/wire";

export function evidenceDigest(evidence: Uint8Array): Uint8Array {
  return sha256(evidence);
}

/** The RFC 9162 leaf hash of this entry: what an inclusion proof starts from. */
export function logEntryLeafHash(e: LogEntry): Uint8Array {
  return logEntryLeafHashWith(sha256, e);
}
