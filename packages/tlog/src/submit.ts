/**
 * What a namespace's submitter signs to have the log append an entry (POST /add):
 *
 *     "bkv-log-submit/v1" || 0x00 || u16 len(namespace) || namespace (UTF-8)
 *       || u32 epoch || SHA-256(artifact) || SHA-256(evidence)
 *
 * Ed25519 by the submitter key the log has registered for the namespace. The domain keeps it apart
 * from every other signature in the system (the log's bundle signature, the fleet's counter-
 * signature, note signatures); binding both digests means a signed submission can only ever append
 * exactly this artifact with exactly this evidence at exactly this (namespace, epoch).
 */
import { concatBytes, utf8 } from "@bkv/wire";
import { ensure, TlogErrorCode } from "./errors.js";
import { HASH_SIZE } from "./merkle.js";

export const SUBMIT_DOMAIN = "bkv-log-submit/v1";

export function submitMessage(
  namespace: string,
  epoch: number,
  artifactDigest: Uint8Array,
  evidenceDigest: Uint8Array,
): Uint8Array {
  const ns = utf8(namespace);
  ensure(ns.length >= 1 && ns.length <= 0xffff, TlogErrorCode.Range, "the namespace must be 1..65535 bytes");
  ensure(
    Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xffffffff,
    TlogErrorCode.Range,
    `bad epoch ${epoch}`,
  );
  ensure(artifactDigest.length === HASH_SIZE, TlogErrorCode.Range, "the artifact digest is 32 bytes");
  ensure(evidenceDigest.length === HASH_SIZE, TlogErrorCode.Range, "the evidence digest is 32 bytes");
  const head = new Uint8Array([0x00, ns.length >> 8, ns.length & 0xff]);
  const ep = new Uint8Array(4);
  new DataView(ep.buffer).setUint32(0, epoch);
  return concatBytes(utf8(SUBMIT_DOMAIN), head, ns, ep, artifactDigest, evidenceDigest);
}
