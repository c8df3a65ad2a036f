/**
 * The handover statement (docs/migration.md §2): what the old fleet signs with its fleet signing
 * key once its HSMs have checked a successor (hsm-core successor.ts), and what is logged before any
 * record moves, so auditors and clients see it first. It names both fleets, the successor's
 * evidence by digest and the checkpoint the old fleet found the successor's log entry in:
 *
 *     "bkv-handover/v1" || 0x00
 *     string namespace                   the deployment's namespace (both fleets are published in it)
 *     u32 epoch || fleet id (16 bytes)   the old fleet
 *     u32 epoch || fleet id (16 bytes)   the successor: its epoch is the old one + 1
 *     SHA-256(successor evidence)        32 bytes: its genesis statement and every member's signature
 *     u64 checkpoint size || root (32)   the log checkpoint the successor's entry was proved in
 *     u64 time                           ms since the epoch, by the signing HSM's clock
 *     Ed25519 signature (64 bytes)       by the old fleet's signing key over everything before it
 *
 * Integers big-endian, strings u32 length || UTF-8 (codec.ts). The domain separates the signed
 * bytes from everything else the fleet signing key signs (validation bundle counter-signatures
 * begin with "bkv-fleet-countersignature/"). Decoding is strict and canonical: the domain, every
 * length, a namespace of 1 to 255 bytes, a successor epoch exactly one above the old, two distinct
 * fleet ids, no trailing bytes; anything else is MALFORMED. The signature is checked by each side's
 * own strict Ed25519 verifier against the old fleet's signing key from its verified evidence.
 */
import { bytesEqual, utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";
import { FLEET_ID_LENGTH, MAX_NAMESPACE_BYTES } from "./genesis-statement.js";

const HANDOVER_DOMAIN = utf8("bkv-handover/v1\0");
export const HANDOVER_SIGNATURE_LENGTH = 64;

export interface Handover {
  namespace: string;
  /** The old fleet: the one that signs. */
  epoch: number;
  fleetId: Uint8Array;
  successorEpoch: number;
  successorFleetId: Uint8Array;
  /** SHA-256 of the successor's encoded evidence (wire genesis-statement.ts FleetEvidence). */
  successorEvidenceDigest: Uint8Array;
  /** The checkpoint (tree size and root hash) in which the old fleet found the successor's entry. */
  checkpointSize: number;
  checkpointRoot: Uint8Array;
  /** ms since the epoch. */
  time: number;
}

export interface SignedHandover extends Handover {
  signature: Uint8Array;
}

function checkHandover(h: Handover, what: string): void {
  const ns = utf8(h.namespace).length;
  check(ns >= 1 && ns <= MAX_NAMESPACE_BYTES, `${what}: the namespace is 1 to ${MAX_NAMESPACE_BYTES} bytes`);
  check(
    Number.isInteger(h.epoch) && h.epoch >= 0 && h.epoch < 0xffffffff,
    `${what}: the old epoch ${h.epoch} has no next epoch`,
  );
  check(
    h.successorEpoch === h.epoch + 1,
    `${what}: the successor's epoch ${h.successorEpoch} is not the old epoch ${h.epoch} + 1`,
  );
  check(
    h.fleetId.length === FLEET_ID_LENGTH && h.successorFleetId.length === FLEET_ID_LENGTH,
    `${what}: fleet ids are ${FLEET_ID_LENGTH} bytes`,
  );
  check(!bytesEqual(h.fleetId, h.successorFleetId), `${what}: a fleet cannot hand over to itself`);
  check(h.successorEvidenceDigest.length === 32, `${what}: the evidence digest is 32 bytes`);
  check(
    Number.isSafeInteger(h.checkpointSize) && h.checkpointSize >= 1,
    `${what}: the checkpoint size ${h.checkpointSize} is no tree that holds an entry`,
  );
  check(Number.isSafeInteger(h.time) && h.time >= 0, `${what}: bad time ${h.time}`);
  check(h.checkpointRoot.length === 32, `${what}: the checkpoint root is 32 bytes`);
}

/** The bytes the old fleet's signing key signs. Throws MALFORMED for a statement that cannot be. */
export function handoverSignedBytes(h: Handover): Uint8Array {
  checkHandover(h, "handover");
  return new Writer()
    .fixed(HANDOVER_DOMAIN)
    .string(h.namespace)
    .u32(h.epoch)
    .fixed(h.fleetId)
    .u32(h.successorEpoch)
    .fixed(h.successorFleetId)
    .fixed(h.successorEvidenceDigest)
    .u64(h.checkpointSize)
    .fixed(h.checkpointRoot)
    .u64(h.time)
    .finish();
}

export function encodeSignedHandover(h: SignedHandover): Uint8Array {
  check(
    h.signature.length === HANDOVER_SIGNATURE_LENGTH,
    `handover: the signature is ${HANDOVER_SIGNATURE_LENGTH} bytes`,
  );
  return new Writer().fixed(handoverSignedBytes(h)).fixed(h.signature).finish();
}

/** Decode a signed handover statement; MALFORMED for anything but exactly one encoding. */
export function decodeSignedHandover(b: Uint8Array): SignedHandover {
  const r = new Reader(b, "handover");
  const d = r.fixed(HANDOVER_DOMAIN.length, "domain");
  check(bytesEqual(d, HANDOVER_DOMAIN), "handover: wrong domain");
  const namespace = r.string("namespace", MAX_NAMESPACE_BYTES);
  const epoch = r.u32("epoch");
  const fleetId = r.fixed(FLEET_ID_LENGTH, "fleet id");
  const successorEpoch = r.u32("successor epoch");
  const successorFleetId = r.fixed(FLEET_ID_LENGTH, "successor fleet id");
  const successorEvidenceDigest = r.fixed(32, "successor evidence digest");
  const checkpointSize = r.u64("checkpoint size");
  const checkpointRoot = r.fixed(32, "checkpoint root");
  const time = r.u64("time");
  const signature = r.fixed(HANDOVER_SIGNATURE_LENGTH, "signature");
  r.end();
  const h: SignedHandover = {
    namespace,
    epoch,
    fleetId,
    successorEpoch,
    successorFleetId,
    successorEvidenceDigest,
    checkpointSize,
    checkpointRoot,
    time,
    signature,
  };
  checkHandover(h, "handover");
  return h;
}
