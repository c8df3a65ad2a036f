/**
 * What the log checks before it appends to a releases namespace: the artifact is a signed release
 * entry (@bkv/tlog release.ts) for exactly this (namespace, epoch), signed by the release key the
 * log's configuration registers for the namespace (`--release-key NAME=<hex>`), and the evidence
 * is empty (the signature travels in the artifact). Refusals: 422 with code MALFORMED (not a
 * release entry, or evidence given) or SIGNATURE (another key, or other bytes, signed it).
 */
import { decodeSignedRelease, type SignedRelease, verifyRelease } from "@bkv/tlog";
import { BkvError, ErrorCode } from "@bkv/wire";

export function checkRelease(
  req: { namespace: string; epoch: number; artifact: Uint8Array; evidence: Uint8Array },
  releaseKey: Uint8Array,
): SignedRelease {
  let r: SignedRelease;
  try {
    r = decodeSignedRelease(req.artifact);
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, `the artifact is not a release entry: ${(e as Error).message}`);
  }
  if (req.evidence.length !== 0) {
    throw new BkvError(
      ErrorCode.Malformed,
      "a release entry carries its signature; its evidence must be empty",
    );
  }
  if (r.namespace !== req.namespace || r.epoch !== req.epoch) {
    throw new BkvError(
      ErrorCode.Malformed,
      `the release is for (${r.namespace}, ${r.epoch}), not (${req.namespace}, ${req.epoch})`,
    );
  }
  if (!verifyRelease(r, releaseKey)) {
    throw new BkvError(ErrorCode.Signature, `the release is not signed by ${req.namespace}'s release key`);
  }
  return r;
}
