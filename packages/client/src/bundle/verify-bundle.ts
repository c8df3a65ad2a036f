/**
 * The client's check of a validation bundle, before it sends anything that depends on the PIN:
 *
 *   1. the bundle is for the pinned namespace;
 *   2. its checkpoint is signed by the pinned log key and cosigned by at least the threshold of
 *      pinned witnesses;
 *   3. the checkpoint is no older than the largest one this client has seen, agrees with it at the
 *      same size, and is proven consistent with it when larger (no rollback, no split view);
 *   4. the artifact is in the log (inclusion proof to the checkpoint's root);
 *   5. the log signed (namespace, epoch, SHA-256(artifact));
 *   6. the fleet named by the artifact counter-signed the log's signature;
 *   7. the artifact is within its validity window.
 *
 * Each failure is its own BkvError code. Only when all hold is the checkpoint remembered.
 * Browser-safe: @bkv/tlog and @noble/curves.
 */
import {
  type Checkpoint,
  fromBase64,
  logEntryLeafHash,
  type NoteVerifier,
  noteVerifier,
  type OpenedNote,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  toBase64,
  verifyBundleSignature,
  verifyConsistency,
  verifyInclusion,
} from "@bkv/tlog";
import {
  artifactKey,
  BkvError,
  type BundleJson,
  bytesEqual,
  countersignMessage,
  decodeArtifact,
  ErrorCode,
  type FleetArtifact,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import type { CheckpointStore, SeenCheckpoint, TrustPins } from "./pins.js";

export interface VerifiedFleet {
  artifact: FleetArtifact;
  /** The artifact's bytes, to tell whether two bundles vouch for the same fleet. */
  artifactBytes: Uint8Array;
  vaultPublicKey: Uint8Array;
  checkpoint: SeenCheckpoint;
  /** Names of the witnesses whose cosignatures verified. */
  cosigners: string[];
}

const fail = (code: ErrorCode, message: string, cause?: unknown): never => {
  throw new BkvError(code, message, cause === undefined ? undefined : { cause });
};

function bytesOf(s: unknown, what: string): Uint8Array {
  const b = typeof s === "string" ? fromBase64(s) : undefined;
  if (b === undefined) return fail(ErrorCode.Malformed, `bundle: ${what} is not base64`);
  return b;
}

/** Step 2: the checkpoint, signed by the log and cosigned by enough witnesses. */
function openCheckpoint(note: string, pins: TrustPins): { cp: Checkpoint; cosigners: string[] } {
  let log: NoteVerifier;
  let witnesses: NoteVerifier[];
  try {
    log = noteVerifier(pins.logKey);
    witnesses = pins.witnessKeys.map((k) => noteVerifier(k));
  } catch (e) {
    return fail(ErrorCode.Invalid, "the pinned log or witness keys do not parse", e);
  }
  if (log.type !== SIG_ED25519 || witnesses.some((w) => w.type !== SIG_COSIGNATURE_V1))
    return fail(ErrorCode.Invalid, "pins: the log key must be Ed25519, witness keys cosignature/v1");
  let byLog: OpenedNote;
  try {
    byLog = openNote(note, [log]);
  } catch (e) {
    return fail(ErrorCode.BundleCheckpoint, "the checkpoint is not signed by the pinned log", e);
  }
  let cp: Checkpoint;
  try {
    cp = parseCheckpoint(byLog.text);
  } catch (e) {
    return fail(ErrorCode.BundleCheckpoint, "the checkpoint does not parse", e);
  }
  if (cp.origin !== log.name)
    fail(ErrorCode.BundleCheckpoint, `the checkpoint is for another log (${cp.origin})`);
  const cosigners: string[] = [];
  for (const w of witnesses) {
    try {
      if (openNote(note, [w]).verified.length > 0 && !cosigners.includes(w.name)) cosigners.push(w.name);
    } catch {
      // no (valid) cosignature by this witness
    }
  }
  if (cosigners.length < pins.witnessThreshold) {
    fail(
      ErrorCode.BundleWitnesses,
      `the checkpoint has ${cosigners.length} valid witness cosignatures; ${pins.witnessThreshold} required`,
    );
  }
  return { cp, cosigners };
}

/** Step 3: no rollback, no split view, proven consistency with the largest checkpoint seen. */
function checkAgainstSeen(cp: Checkpoint, seen: SeenCheckpoint | null, b: BundleJson): void {
  if (seen === null) return;
  const seenRoot = bytesOf(seen.root, "the stored root");
  if (cp.size < seen.size) {
    fail(
      ErrorCode.BundleRollback,
      `the checkpoint has ${cp.size} entries; this client has seen ${seen.size}`,
    );
  }
  if (cp.size === seen.size) {
    if (!bytesEqual(cp.root, seenRoot)) {
      fail(
        ErrorCode.BundleSplitView,
        `two different checkpoints of size ${cp.size}: the log shows a split view`,
      );
    }
    return;
  }
  if (seen.size === 0) return;
  const c = b.consistency;
  if (c === undefined || c.from !== seen.size) {
    fail(
      ErrorCode.BundleInconsistent,
      `no consistency proof from the ${seen.size} entries this client has seen`,
    );
  }
  try {
    verifyConsistency(
      seen.size,
      cp.size,
      seenRoot,
      cp.root,
      c!.proof.map((p, i) => bytesOf(p, `consistency proof ${i}`)),
    );
  } catch (e) {
    if (e instanceof BkvError) throw e;
    fail(
      ErrorCode.BundleInconsistent,
      "the checkpoint is not consistent with the one this client has seen",
      e,
    );
  }
}

export async function verifyBundle(
  b: BundleJson,
  pins: TrustPins,
  store: CheckpointStore,
  now: number,
): Promise<VerifiedFleet> {
  if (typeof b !== "object" || b === null) fail(ErrorCode.BundleMissing, "no validation bundle");
  // 1. namespace
  if (b.namespace !== pins.namespace) {
    fail(
      ErrorCode.BundleNamespace,
      `the bundle is for namespace ${JSON.stringify(b.namespace)}, not ${JSON.stringify(pins.namespace)}`,
    );
  }
  const artifactBytes = bytesOf(b.artifact, "artifact");
  const evidenceDigest = bytesOf(b.evidenceDigest, "evidence digest");
  const logSignature = bytesOf(b.logSignature, "log signature");
  const countersignature = bytesOf(b.countersignature, "counter-signature");
  if (!Array.isArray(b.inclusionProof) || typeof b.checkpoint !== "string" || !Number.isSafeInteger(b.index))
    fail(ErrorCode.Malformed, "bundle: missing fields");
  // 2. checkpoint
  const { cp, cosigners } = openCheckpoint(b.checkpoint, pins);
  // 3. against what this client has seen
  const seen = await store.load();
  checkAgainstSeen(cp, seen, b);
  // 4. inclusion
  let leaf: Uint8Array;
  try {
    leaf = logEntryLeafHash({
      namespace: b.namespace,
      epoch: b.epoch,
      artifact: artifactBytes,
      evidenceDigest,
    });
  } catch (e) {
    return fail(ErrorCode.Malformed, "bundle: the log entry cannot be rebuilt", e);
  }
  try {
    verifyInclusion(
      b.index,
      cp.size,
      leaf,
      b.inclusionProof.map((p, i) => bytesOf(p, `inclusion proof ${i}`)),
      cp.root,
    );
  } catch (e) {
    if (e instanceof BkvError) throw e;
    fail(ErrorCode.BundleNotLogged, "the artifact is not in the log: its inclusion proof fails", e);
  }
  // 5. the log's signature
  if (
    !verifyBundleSignature(parseVerifierKey(pins.logKey), b.namespace, b.epoch, artifactBytes, logSignature)
  ) {
    fail(ErrorCode.BundleLogSignature, "the log's signature over the artifact does not verify");
  }
  let artifact: FleetArtifact;
  try {
    artifact = decodeArtifact(artifactBytes);
  } catch (e) {
    return fail(ErrorCode.Malformed, "bundle: the artifact does not decode", e);
  }
  if (artifact.namespace !== b.namespace || artifact.epoch !== b.epoch) {
    fail(ErrorCode.BundleNamespace, "the artifact's namespace or epoch differs from the bundle's");
  }
  // 6. the fleet's counter-signature
  const signing = artifactKey(artifact, "fleet-signing");
  let countersigned = false;
  try {
    countersigned = ed25519.verify(countersignature, countersignMessage(logSignature), signing, {
      zip215: false,
    });
  } catch {
    countersigned = false;
  }
  if (!countersigned) fail(ErrorCode.BundleNotCountersigned, "the fleet did not counter-sign this bundle");
  // 7. validity
  if (now < artifact.notBefore || now > artifact.notAfter) {
    fail(
      ErrorCode.BundleExpired,
      `the fleet artifact is valid from ${new Date(artifact.notBefore).toISOString()} to ${new Date(artifact.notAfter).toISOString()}`,
    );
  }
  const checkpoint = { size: cp.size, root: toBase64(cp.root) };
  if (seen === null || cp.size > seen.size) await store.save(checkpoint);
  return {
    artifact,
    artifactBytes,
    vaultPublicKey: artifactKey(artifact, "vault-hpke"),
    checkpoint,
    cosigners,
  };
}
