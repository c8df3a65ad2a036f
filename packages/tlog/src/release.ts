/**
 * Release entries (the codec is @bkv/wire's release.ts, shared with the HSM core) and their check
 * under a release key with this package's strict Ed25519 verifier.
 */
import { releaseSignedBytes, type SignedRelease } from "@bkv/wire";
import { ed25519VerifyStrict } from "./note.js";

export {
  decodeSignedRelease,
  encodeSignedRelease,
  MAX_BUILD_RECIPE,
  MAX_SOURCE_REVISION,
  type Release,
  releaseSignedBytes,
  type SignedRelease,
} from "@bkv/wire";

/** Whether the release key signed this release (strict Ed25519). */
export function verifyRelease(r: SignedRelease, releaseKey: Uint8Array): boolean {
  return ed25519VerifyStrict(releaseKey, releaseSignedBytes(r), r.signature);
}
