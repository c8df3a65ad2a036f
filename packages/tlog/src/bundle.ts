/**
 * What the log signs for each appended artifact, so clients can check a validation bundle:
 *
 *     "bkv-bundle/v1" || 0x00 || u16 len(namespace) || namespace (UTF-8)
 *       || u32 epoch || SHA-256(artifact)
 *
 * signed with Ed25519 by the log's key (the key of its checkpoint signatures).
 */
import { logBundleMessage, utf8 } from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";
import { ensure, TlogErrorCode } from "./errors.js";
import { HASH_SIZE } from "./merkle.js";
import { ed25519VerifyStrict, parseVerifierKey, SIG_ED25519, type VerifierKey } from "./note.js";

export const BUNDLE_SIGNATURE_DOMAIN = "bkv-bundle/v1";

export function artifactDigest(artifact: Uint8Array): Uint8Array {
  return sha256(artifact);
}

export function bundleSignedMessage(namespace: string, epoch: number, digest: Uint8Array): Uint8Array {
  const ns = utf8(namespace);
  ensure(ns.length >= 1 && ns.length <= 0xffff, TlogErrorCode.Range, "the namespace must be 1..65535 bytes");
  ensure(
    Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xffffffff,
    TlogErrorCode.Range,
    `bad epoch ${epoch}`,
  );
  ensure(digest.length === HASH_SIZE, TlogErrorCode.Range, "the artifact digest is 32 bytes");
  return logBundleMessage(namespace, epoch, digest);
}

/** Check the log's bundle signature with its Ed25519 verifier key (the one clients pin). */
export function verifyBundleSignature(
  logKey: string | VerifierKey,
  namespace: string,
  epoch: number,
  artifact: Uint8Array,
  signature: Uint8Array,
): boolean {
  const k = typeof logKey === "string" ? parseVerifierKey(logKey) : logKey;
  if (k.type !== SIG_ED25519 || signature.length !== 64) return false;
  try {
    const msg = bundleSignedMessage(namespace, epoch, artifactDigest(artifact));
    return ed25519VerifyStrict(k.publicKey, msg, signature);
  } catch {
    return false;
  }
}
