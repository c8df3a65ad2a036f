/**
 * The browser entry of @bkv/client, built into one ES module (the browser build) by build-browser.mjs
 * (dist/browser/bkv-client.js): the whole browser-safe SDK (backup files, vault client, bundle
 * checks, evidence audit, passkeys) plus what a transparency page needs to follow the log and
 * decode what it holds. No Node API is reachable from here.
 */

import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";

// Transparency log: checkpoints, notes, Merkle proofs, tiles, log entries, bundle signatures, releases.
export {
  type Checkpoint,
  type CosignedCheckpoint,
  decodeLogEntry,
  decodeSignedRelease,
  fromBase64,
  type LogEntry,
  logEntryLeafHash,
  type NoteVerifier,
  noteVerifier,
  type OpenedNote,
  openCosignedCheckpoint,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  TiledLog,
  type TileReader,
  type TrustPolicy,
  toBase64,
  verifyBundleSignature,
  verifyConsistency,
  verifyInclusion,
  verifyRelease,
} from "@bkv/tlog";
// Wire formats: fleet artifacts, genesis statements and evidence, byte encodings.
export {
  artifactKey,
  decodeArtifact,
  decodeEvidence,
  decodeStatement,
  type FleetArtifact,
  type FleetEvidence,
  type FleetPolicy,
  fromBase64Url,
  fromHex,
  type GenesisStatement,
  type KeyRole,
  toBase64Url,
  toHex,
} from "@bkv/wire";
export * from "./index.js";

import { strictEd25519Verify } from "./evidence/strict.js";

/** Ed25519 verification, strict (the one verifier: strictEd25519Verify); false on any bad input. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return strictEd25519Verify(publicKey, message, signature);
}

/** SHA-256, synchronous, for auditEvidence and evidence digests in a browser. */
export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}
