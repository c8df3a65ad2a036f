/**
 * The client's check of a validation bundle, before it sends anything that depends on the PIN:
 *
 *   1. the bundle is for the pinned namespace (and the pins themselves are well formed);
 *   2. its checkpoint is signed by the pinned log key and cosigned by at least the threshold of
 *      pinned witnesses;
 *   3. the checkpoint is no older than the largest one this client has seen, agrees with it at the
 *      same size, and is proven consistent with it when larger (no rollback, no split view);
 *   4. the artifact is in the log (inclusion proof to the checkpoint's root);
 *   5. the log signed (namespace, epoch, SHA-256(artifact));
 *   6. the fleet's evidence, unless this device verified this artifact before: the bundle carries
 *      it, its SHA-256 is the log entry's evidence digest, it passes the audit under the pins
 *      (vendor roots, measurements, N >= 3, guess limit, namespace, log key) and the artifact says
 *      exactly what the verified genesis statement says. A measurement not pinned is accepted only
 *      with a release (pins.release): bundle.release is against the very same checkpoint, its
 *      entry is in the log, in the pinned releases namespace, signed by the pinned release key,
 *      and releases exactly the fleet's measurement (checkRelease);
 *   7. the counter-signature, by the fleet signing key of the verified statement, over
 *      (namespace, epoch, SHA-256(artifact), log signature);
 *   8. the artifact is within its validity window.
 *
 * Each failure is its own BkvError code. Only when all hold is the artifact remembered as verified
 * and the checkpoint stored (compare-and-swap: a larger stored checkpoint is never replaced).
 * Every signature is checked with strictEd25519Verify. Browser-safe: @bkv/tlog and @noble/*.
 */
import {
  type Checkpoint,
  decodeSignedRelease,
  fromBase64,
  logEntryLeafHash,
  type NoteVerifier,
  type OpenedNote,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  releaseSignedBytes,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  toBase64,
  verifyConsistency,
  verifyInclusion,
} from "@bkv/tlog";
import {
  artifactKey,
  BkvError,
  type BundleJson,
  bytesEqual,
  concatBytes,
  countersignMessage,
  decodeArtifact,
  ErrorCode,
  type FleetArtifact,
  fromHex,
  logBundleMessage,
  type ReleaseBundleJson,
  toHex,
  utf8,
} from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";
import { strictEd25519Verify, strictNoteVerifier } from "../evidence/strict.js";
import { verifyFleetEvidence } from "../evidence/verify-evidence.js";
import {
  type CheckpointStore,
  memoryVerifiedCache,
  parseTrustPins,
  type SeenCheckpoint,
  sameCheckpoint,
  type TrustPins,
  type VerifiedArtifactCache,
} from "./pins.js";

export interface VerifiedFleet {
  artifact: FleetArtifact;
  /** The artifact's bytes, to tell whether two bundles vouch for the same fleet. */
  artifactBytes: Uint8Array;
  vaultPublicKey: Uint8Array;
  checkpoint: SeenCheckpoint;
  /** Names of the witnesses whose cosignatures verified. */
  cosigners: string[];
  /** True if this call verified the fleet's evidence; false if this device had verified it before. */
  evidenceVerified: boolean;
}

const fail = (code: ErrorCode, message: string, cause?: unknown): never => {
  throw new BkvError(code, message, cause === undefined ? undefined : { cause });
};

function bytesOf(s: unknown, what: string): Uint8Array {
  const b = typeof s === "string" ? fromBase64(s) : undefined;
  if (b === undefined) return fail(ErrorCode.Malformed, `bundle: ${what} is not base64`);
  return b;
}

/**
 * Signatures this process has verified (strictly) before, by SHA-256 of (key, signature, SHA-256 of
 * the message): a bundle checked again (a new operation, the same checkpoint) costs hashes, not
 * curve operations. Only successes are kept, in memory, at most MEMO_MAX (oldest dropped first).
 */
const MEMO_MAX = 1024;
const verifiedSignatures = new Set<string>();
function memoVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const id = toHex(sha256(concatBytes(publicKey, signature, sha256(message))));
  if (verifiedSignatures.has(id)) return true;
  if (!strictEd25519Verify(publicKey, message, signature)) return false;
  if (verifiedSignatures.size >= MEMO_MAX)
    verifiedSignatures.delete(verifiedSignatures.values().next().value!);
  verifiedSignatures.add(id);
  return true;
}

/** Pins checked once per object: verifyBundle refuses pins parseTrustPins would refuse. */
const checkedPins = new WeakMap<TrustPins, TrustPins>();
function validPins(pins: TrustPins): TrustPins {
  let p = checkedPins.get(pins);
  if (p === undefined) {
    p = parseTrustPins(pins);
    checkedPins.set(pins, p);
  }
  return p;
}

/**
 * The key under which a verified artifact is remembered: the artifact's digest, its evidence's
 * digest, and everything in the pins the evidence was checked against.
 */
export function verifiedArtifactKey(
  pins: TrustPins,
  artifactDigest: Uint8Array,
  evidenceDigest: Uint8Array,
): string {
  const policy = JSON.stringify([
    pins.logKey,
    pins.namespace,
    // A root's kind decides what it vouches for (Ed25519 vendor signatures or a Nitro chain).
    pins.vendorRoots.map((r) => [r.name, r.key, r.test, r.kind ?? "ed25519"]),
    pins.measurements,
    pins.release === undefined ? null : [pins.release.key, pins.release.namespace],
    pins.maxGuessLimit,
    pins.allowTestRoots === true,
    pins.allowSmallFleet === true,
  ]);
  return toHex(
    sha256(utf8(`bkv-verified-artifact/v1\n${policy}\n${toHex(artifactDigest)}\n${toHex(evidenceDigest)}`)),
  );
}

/** Step 2: the checkpoint, signed by the log and cosigned by enough witnesses. */
function openCheckpoint(note: string, pins: TrustPins): { cp: Checkpoint; cosigners: string[] } {
  let log: NoteVerifier;
  let witnesses: NoteVerifier[];
  try {
    log = strictNoteVerifier(pins.logKey, memoVerify);
    witnesses = pins.witnessKeys.map((k) => strictNoteVerifier(k, memoVerify));
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
  if (c === undefined || c === null || typeof c !== "object" || c.from !== seen.size) {
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

/**
 * Store `cp` unless a larger (or equal) checkpoint is stored: compare-and-swap against what was
 * verified, and on a lost race re-read. A stored checkpoint of the same size with another root is a
 * split view; a smaller one stored meanwhile is replaced only if this bundle proves consistency
 * from it (otherwise it stays, and the next verification asks for a proof from it); either way the
 * epoch and artifact verified here are recorded, so a race cannot let an older epoch back in.
 */
async function remember(
  store: CheckpointStore,
  seen: SeenCheckpoint | null,
  cp: Checkpoint,
  b: BundleJson,
  artifactDigest: Uint8Array,
): Promise<SeenCheckpoint> {
  // Returns this bundle's checkpoint; the store keeps the larger one, the newer epoch and the
  // artifact verified at that epoch.
  const fresh = { size: cp.size, root: toBase64(cp.root) };
  const digest = toHex(artifactDigest);
  let expected = seen;
  // Set when a smaller checkpoint was stored meanwhile and this bundle proves no consistency from
  // it: that checkpoint stays, but the epoch (and artifact) verified here are still recorded.
  let keepStored = false;
  for (let attempt = 0; attempt < 100; attempt++) {
    // Keep the larger checkpoint (ours only if larger), the newer epoch and its artifact.
    const base = expected !== null && (keepStored || expected.size >= fresh.size) ? expected : fresh;
    const seenEpoch = expected?.epoch ?? 0;
    const next: SeenCheckpoint = {
      size: base.size,
      root: base.root,
      epoch: Math.max(seenEpoch, b.epoch),
    };
    const artifact =
      b.epoch > seenEpoch || expected?.epoch === undefined
        ? digest
        : b.epoch === seenEpoch
          ? (expected.artifact ?? digest)
          : expected.artifact;
    if (artifact !== undefined) next.artifact = artifact;
    if (expected !== null && sameCheckpoint(expected, next)) return fresh;
    if (await store.save(expected, next)) return fresh;
    const current = await store.load();
    if (sameCheckpoint(current, expected)) continue;
    keepStored = false;
    if (current === null) {
      expected = null;
      continue;
    }
    checkEpoch(current, b, artifactDigest);
    if (current.size >= fresh.size) {
      if (current.size === fresh.size && current.root !== fresh.root)
        fail(
          ErrorCode.BundleSplitView,
          `two different checkpoints of size ${fresh.size}: the log shows a split view`,
        );
      expected = current;
      continue;
    }
    if (current.size === 0 || b.consistency?.from === current.size) {
      checkAgainstSeen(cp, current, b);
      expected = current;
      continue;
    }
    // A smaller checkpoint stored meanwhile, with no proof from it here: it stays, and the next
    // verification asks for a proof from it. The epoch verified here is recorded with it all the
    // same: returning without storing it would let an older epoch be accepted afterwards.
    keepStored = true;
    expected = current;
  }
  return fail(ErrorCode.Unavailable, "the checkpoint store kept changing: try again");
}

/**
 * Clients follow the log to the newest epoch: an older epoch of the namespace than one verified is
 * refused, and so is another fleet at the epoch verified (the log holds one per epoch; two would let
 * a user's registration land in a second fleet while the first still answers for the same key).
 */
function checkEpoch(seen: SeenCheckpoint | null, b: BundleJson, artifactDigest: Uint8Array): void {
  if (seen?.epoch === undefined) return;
  if (b.epoch < seen.epoch) {
    fail(
      ErrorCode.BundleRollback,
      `the bundle is for epoch ${b.epoch} of ${b.namespace}; this client has verified epoch ${seen.epoch}`,
    );
  }
  if (b.epoch === seen.epoch && seen.artifact !== undefined && seen.artifact !== toHex(artifactDigest)) {
    fail(
      ErrorCode.BundleSplitView,
      `two fleets at epoch ${b.epoch} of ${b.namespace}: this client verified the artifact ` +
        `${seen.artifact.slice(0, 16)}…, this bundle carries ${toHex(artifactDigest).slice(0, 16)}…`,
    );
  }
}

/**
 * Step 6 for a measurement the pins do not list: the bundle's release must prove that the pinned
 * release key published exactly this measurement in the pinned releases namespace of this log, at
 * the bundle's own (already verified) checkpoint. Throws BUNDLE_MEASUREMENT saying why not.
 */
function checkRelease(
  rel: ReleaseBundleJson | undefined,
  pins: TrustPins,
  measurement: Uint8Array,
  checkpointNote: string,
  cp: Checkpoint,
): void {
  const m = toHex(measurement);
  const refuse = (why: string, cause?: unknown): never =>
    fail(ErrorCode.BundleMeasurement, `the fleet's code ${m} is not pinned, and ${why}`, cause);
  const pinned = pins.release;
  if (pinned === undefined) return refuse("no release key is pinned");
  if (rel === undefined || rel === null || typeof rel !== "object")
    return refuse(`the bundle carries no release of it (releases namespace ${pinned.namespace})`);
  if (rel.namespace !== pinned.namespace)
    refuse(
      `its release is in namespace ${JSON.stringify(rel.namespace)}, not the pinned ${JSON.stringify(pinned.namespace)}`,
    );
  if (rel.checkpoint !== checkpointNote)
    refuse("its release is proven against another checkpoint than the fleet bundle's");
  const artifact = typeof rel.artifact === "string" ? fromBase64(rel.artifact) : undefined;
  const evidenceDigest = typeof rel.evidenceDigest === "string" ? fromBase64(rel.evidenceDigest) : undefined;
  const logSignature = typeof rel.logSignature === "string" ? fromBase64(rel.logSignature) : undefined;
  if (
    artifact === undefined ||
    evidenceDigest === undefined ||
    logSignature === undefined ||
    !Number.isSafeInteger(rel.epoch) ||
    !Number.isSafeInteger(rel.index) ||
    !Array.isArray(rel.inclusionProof)
  )
    return refuse("its release is malformed");
  try {
    verifyInclusion(
      rel.index,
      cp.size,
      logEntryLeafHash({ namespace: rel.namespace, epoch: rel.epoch, artifact, evidenceDigest }),
      rel.inclusionProof.map((p, i) => bytesOf(p, `release inclusion proof ${i}`)),
      cp.root,
    );
  } catch (e) {
    refuse("its release is not in the log (its inclusion proof fails)", e);
  }
  const logKey = parseVerifierKey(pins.logKey).publicKey;
  if (!memoVerify(logKey, logBundleMessage(rel.namespace, rel.epoch, sha256(artifact)), logSignature))
    refuse("the log's signature over its release does not verify");
  let r: ReturnType<typeof decodeSignedRelease>;
  try {
    r = decodeSignedRelease(artifact);
  } catch (e) {
    return refuse("its release entry does not decode", e);
  }
  if (r.namespace !== rel.namespace || r.epoch !== rel.epoch)
    refuse("its release entry names another namespace or epoch than its log entry");
  if (!strictEd25519Verify(fromHex(pinned.key), releaseSignedBytes(r), r.signature))
    refuse("its release is not signed by the pinned release key");
  if (!bytesEqual(r.measurement, measurement))
    refuse(`the release is for other code (${toHex(r.measurement)})`);
}

/** Without a cache given (or kept by the store), one in memory per checkpoint store. */
const defaultCaches = new WeakMap<CheckpointStore, VerifiedArtifactCache>();
function defaultCache(store: CheckpointStore): VerifiedArtifactCache {
  let c = defaultCaches.get(store);
  if (c === undefined) {
    c = memoryVerifiedCache();
    defaultCaches.set(store, c);
  }
  return c;
}

/**
 * Verify a validation bundle against the pins (see the steps above). `verified` remembers the
 * artifacts whose evidence this device has checked (default: the store's own `verified`, else one
 * in memory per store); a bundle without evidence is accepted only for an artifact in it.
 */
export async function verifyBundle(
  b: BundleJson,
  pinsIn: TrustPins,
  store: CheckpointStore,
  now: number,
  verified?: VerifiedArtifactCache,
): Promise<VerifiedFleet> {
  if (typeof b !== "object" || b === null) fail(ErrorCode.BundleMissing, "no validation bundle");
  const pins = validPins(pinsIn);
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
  const artifactDigest = sha256(artifactBytes);
  // 3. against what this client has seen
  const seen = await store.load();
  checkAgainstSeen(cp, seen, b);
  checkEpoch(seen, b, artifactDigest);
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
  const logKey = parseVerifierKey(pins.logKey).publicKey;
  if (!memoVerify(logKey, logBundleMessage(b.namespace, b.epoch, artifactDigest), logSignature)) {
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
  // 6. the fleet's evidence, once per artifact (and pins) on this device
  const cacheKey = verifiedArtifactKey(pins, artifactDigest, evidenceDigest);
  const cache = verified ?? store.verified ?? defaultCache(store);
  const known = await cache.has(cacheKey);
  let signingKey: Uint8Array;
  if (known) {
    // Verified before: the artifact's signing key is the statement's (artifactMismatches was empty).
    signingKey = artifactKey(artifact, "fleet-signing");
  } else {
    if (typeof b.evidence !== "string")
      fail(
        ErrorCode.BundleEvidence,
        "the bundle carries no evidence for a fleet this device has not verified",
      );
    const evidence = fromBase64(b.evidence!);
    if (evidence === undefined) return fail(ErrorCode.BundleEvidence, "bundle: the evidence is not base64");
    if (!bytesEqual(sha256(evidence), evidenceDigest))
      fail(ErrorCode.BundleEvidence, "the evidence is not the one the log entry names (its SHA-256 differs)");
    let underPins = pins;
    if (!pins.measurements.includes(toHex(artifact.measurement)) && pins.release !== undefined) {
      // Not pinned: accepted only as published under the pinned release key (the audit then
      // checks that the members attest this measurement, and the artifact is the statement's).
      checkRelease(b.release, pins, artifact.measurement, b.checkpoint, cp);
      underPins = { ...pins, measurements: [...pins.measurements, toHex(artifact.measurement)] };
    }
    signingKey = verifyFleetEvidence(evidence, artifact, underPins).fleetSigningKey;
  }
  // 7. the fleet's counter-signature, by the key of the verified statement
  const message = countersignMessage({
    namespace: b.namespace,
    epoch: b.epoch,
    artifactDigest,
    logSignature,
  });
  if (!memoVerify(signingKey, message, countersignature))
    fail(ErrorCode.BundleNotCountersigned, "the fleet did not counter-sign this bundle");
  // 8. validity
  if (now < artifact.notBefore || now > artifact.notAfter) {
    fail(
      ErrorCode.BundleExpired,
      `the fleet artifact is valid from ${new Date(artifact.notBefore).toISOString()} to ${new Date(artifact.notAfter).toISOString()}`,
    );
  }
  const checkpoint = await remember(store, seen, cp, b, artifactDigest);
  if (!known) await cache.add(cacheKey);
  return {
    artifact,
    artifactBytes,
    vaultPublicKey: artifactKey(artifact, "vault-hpke"),
    checkpoint,
    cosigners,
    evidenceVerified: !known,
  };
}
