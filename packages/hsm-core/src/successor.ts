/**
 * The old fleet's check of a successor fleet (docs/migration.md §2), pure: no state, no log, no
 * wiring yet. Everything the host hands over is bytes; what they are checked against is what this
 * fleet's genesis froze (its namespace, epoch, log key, release key, highest successor guess
 * limit and witness policy) and the vendor roots this HSM's platform trusts.
 *
 * It checks §2 point 1 (every successor member attested to a vendor root this HSM trusts, through
 * checkMembers, the code path genesis uses for the fleet's own members: strict keys, no key twice,
 * every member attesting the successor's measurement), point 3 (every member's signature over the
 * successor's statement, a fresh challenge per member, the namespace and the log key equal to this
 * fleet's, the epoch this fleet's + 1, a guess limit no higher than the frozen maximum, N and
 * quorum consistent), point 2 (the successor's measurement in a release signed by the frozen
 * release key, and that release's entry in the log) and point 4 (the successor's entry: its
 * artifact, saying what its statement says, and the digest of exactly this evidence, in the log).
 *
 * Both entries are checked against one checkpoint: signed by the frozen log key (the checkpoint's
 * origin names it) and cosigned by at least the threshold of the witness policy, each by an RFC
 * 9162 inclusion proof. The checks are @bkv/wire's (the same inclusion check, note and checkpoint
 * parsers and entry codec @bkv/tlog's clients use), run with this HSM's SHA-256 and Ed25519. The
 * core builds both leaves itself from what it verified; the host only supplies proofs.
 *
 * The witness policy is the one this fleet's genesis froze (genesis statement v5), like every other
 * term: a Genesis entry is a FrozenTerms, and nothing the host says changes what is checked.
 */
import {
  type Attestation,
  artifactMismatches,
  BkvError,
  bytesEqual,
  decodeArtifact,
  decodeEvidence,
  decodeSignedRelease,
  decodeStatement,
  ErrorCode,
  ed25519PointProblem,
  ed25519SignatureProblem,
  encodeAttestation,
  type FleetEvidence,
  type GenesisStatement,
  isTlogError,
  keyIdWith,
  logEntryLeafHashWith,
  type NoteVerifier,
  noteVerifierWith,
  openNote,
  parseCheckpoint,
  parseNote,
  quorumOf,
  releaseSignedBytes,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  type SignedRelease,
  TlogErrorCode,
  toHex,
  verifyInclusionWith,
} from "@bkv/wire";
import {
  checkChallenges,
  checkMembers,
  checkSignatures,
  validateGuessLimit,
  vendorDocumentCheck,
} from "./genesis.js";
import type { HsmPlatform } from "./platform.js";
import type { Genesis } from "./raft-entry.js";

export type { WitnessPolicy } from "@bkv/wire";

/**
 * What this fleet's genesis froze that a successor is checked against: all of it from the Genesis
 * entry (genesis statement v5), the witness policy included; the host supplies none of it.
 */
export type FrozenTerms = Pick<
  Genesis,
  "namespace" | "epoch" | "logKey" | "releaseKey" | "maxSuccessorGuessLimit" | "witnessPolicy"
>;

/** Where an entry is in the log: its leaf index and the RFC 9162 inclusion proof to the checkpoint. */
export interface Inclusion {
  index: number;
  proof: Uint8Array[];
}

/** What the host hands over about a successor: bytes, nothing believed until checked. */
export interface SuccessorEvidence {
  /** The successor's encoded FleetEvidence (its genesis statement and every member's signature). */
  evidence: Uint8Array;
  /** The signed release (wire release.ts) of the successor's measurement. */
  release: Uint8Array;
  /** The successor's fleet artifact exactly as logged with its evidence (wire fleet-artifact.ts). */
  artifact: Uint8Array;
  /** A checkpoint note (C2SP signed note, UTF-8) both entries are included in. */
  checkpoint: Uint8Array;
  /** The successor's entry (namespace, epoch, artifact, SHA-256 of the evidence) in that checkpoint's tree. */
  entryInclusion: Inclusion;
  /** The release's entry (its namespace and epoch, the release as artifact, empty evidence). */
  releaseInclusion: Inclusion;
}

export interface CheckedSuccessor {
  statement: GenesisStatement;
  members: Attestation[];
  release: SignedRelease;
  /** SHA-256 of the successor's evidence bytes: what the handover statement names. */
  evidenceDigest: Uint8Array;
  /** The checkpoint both entries were found in. */
  checkpoint: { origin: string; size: number; root: Uint8Array };
}

function refuse(code: ErrorCode, message: string): never {
  throw new BkvError(code, `successor refused: ${message}`);
}

/** Re-throw a check's error with the same code, saying it is about the successor. */
function named<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const code = e instanceof BkvError ? e.code : ErrorCode.Invalid;
    refuse(code, (e as Error).message);
  }
}

/**
 * Check a successor's evidence and release against what this fleet froze; returns the verified
 * statement, its members and the release, or throws a BkvError naming the first failed check:
 * MALFORMED (bytes that do not decode), POLICY (its guess limit above the frozen maximum, or N and
 * quorum wrong), ATTESTATION (a member not attested by a trusted vendor root, weak or repeated keys),
 * MEASUREMENT (a member attesting other code, a release of other code or not signed by the frozen
 * release key), GENESIS_CHALLENGE (challenges missing, short or repeated), SIGNATURE (a member's
 * signature over the statement missing or wrong), INVALID (another namespace or log, an epoch other
 * than this one's + 1, a fleet signing key that is no strict point).
 */
export function checkSuccessor(
  platform: HsmPlatform,
  frozen: FrozenTerms,
  s: SuccessorEvidence,
): CheckedSuccessor {
  const crypto = platform.crypto;
  let ev: FleetEvidence;
  let st: GenesisStatement;
  try {
    ev = decodeEvidence(s.evidence);
    st = decodeStatement(ev.statement);
  } catch (e) {
    const code = e instanceof BkvError ? e.code : ErrorCode.Malformed;
    refuse(code, `its evidence does not decode: ${(e as Error).message}`);
  }

  // Point 3, what this fleet decides alone: where it is published and how many guesses it gives.
  if (st.namespace !== frozen.namespace)
    refuse(
      ErrorCode.Invalid,
      `its namespace ${JSON.stringify(st.namespace)} is not this fleet's ${JSON.stringify(frozen.namespace)}`,
    );
  if (st.epoch !== frozen.epoch + 1)
    refuse(ErrorCode.Invalid, `its epoch is ${st.epoch}, not ${frozen.epoch + 1} (this fleet's + 1)`);
  if (!bytesEqual(st.logKey, frozen.logKey))
    refuse(ErrorCode.Invalid, "it is frozen to another log key than this fleet's (clients pin one log)");
  named(() => validateGuessLimit(st.policy.guessLimit));
  if (st.policy.guessLimit > frozen.maxSuccessorGuessLimit)
    refuse(
      ErrorCode.Policy,
      `its guess limit ${st.policy.guessLimit} is above the ${frozen.maxSuccessorGuessLimit} this fleet's genesis allows a successor`,
    );
  const n = st.members.length;
  if (st.policy.n !== n || st.policy.quorum !== quorumOf(n))
    refuse(
      ErrorCode.Policy,
      `its policy says n=${st.policy.n} quorum=${st.policy.quorum} for ${n} members (quorum ${quorumOf(n)})`,
    );
  const fleetKeyProblem = ed25519PointProblem(st.fleetSigningKey);
  if (fleetKeyProblem !== null) refuse(ErrorCode.Invalid, `its fleet signing key is ${fleetKeyProblem}`);

  // Point 1: every member attested to a vendor root this HSM trusts, running the successor's code.
  const members = named(() =>
    checkMembers(
      crypto,
      platform.vendorRoots(),
      st.measurement,
      st.members.map((m) => encodeAttestation(m)),
      vendorDocumentCheck(platform),
    ),
  );
  named(() => checkChallenges(st.challenges, n));
  // Point 3: every member signed exactly these statement bytes.
  named(() => checkSignatures(crypto, members, ev.statement, ev.signatures));

  // Point 2 (first half): the successor's code is released under the frozen release key.
  let release: SignedRelease;
  try {
    release = decodeSignedRelease(s.release);
  } catch (e) {
    refuse(ErrorCode.Malformed, `its release does not decode: ${(e as Error).message}`);
  }
  if (!bytesEqual(release.measurement, st.measurement))
    refuse(
      ErrorCode.Measurement,
      `the release is of code ${toHex(release.measurement)}, not the successor's ${toHex(st.measurement)}`,
    );
  const sigProblem = ed25519SignatureProblem(release.signature);
  if (
    sigProblem !== null ||
    !crypto.ed25519Verify(frozen.releaseKey, releaseSignedBytes(release), release.signature)
  )
    refuse(
      ErrorCode.Measurement,
      `its code is not released under the release key this fleet froze (${toHex(frozen.releaseKey)})`,
    );
  // Point 4: the artifact says what the statement says, and the entry of exactly this artifact and
  // evidence is in the log; point 2 (second half): so is the release.
  let artifact: ReturnType<typeof decodeArtifact>;
  try {
    artifact = decodeArtifact(s.artifact);
  } catch (e) {
    refuse(ErrorCode.Malformed, `its artifact does not decode: ${(e as Error).message}`);
  }
  const mismatches = artifactMismatches(artifact, st);
  if (mismatches.length > 0)
    refuse(ErrorCode.Invalid, `its artifact does not say what its statement says: ${mismatches.join(", ")}`);
  const evidenceDigest = crypto.sha256(s.evidence);
  const checkpoint = openFrozenCheckpoint(platform, frozen, s.checkpoint);
  const hash = (b: Uint8Array) => crypto.sha256(b);
  const included = (what: string, leaf: Uint8Array, at: Inclusion) => {
    try {
      verifyInclusionWith(hash, at.index, checkpoint.size, leaf, at.proof, checkpoint.root);
    } catch (e) {
      if (!isTlogError(e)) throw e;
      refuse(ErrorCode.BundleNotLogged, `${what} is not in the log at index ${at.index}: ${e.message}`);
    }
  };
  included(
    "its entry",
    logEntryLeafHashWith(hash, {
      namespace: st.namespace,
      epoch: st.epoch,
      artifact: s.artifact,
      evidenceDigest,
    }),
    s.entryInclusion,
  );
  included(
    "its release",
    logEntryLeafHashWith(hash, {
      namespace: release.namespace,
      epoch: release.epoch,
      artifact: s.release,
      evidenceDigest: crypto.sha256(new Uint8Array(0)),
    }),
    s.releaseInclusion,
  );
  return { statement: st, members, release, evidenceDigest, checkpoint };
}

/**
 * Open a checkpoint note: signed by the frozen log key under the checkpoint's own origin (the log's
 * name; the key ID binds it), cosigned by at least the policy's threshold of distinct witnesses.
 * Refusals: BUNDLE_CHECKPOINT (not a signed checkpoint, not the frozen log's signature, a bad
 * signature by a known key), BUNDLE_WITNESSES (too few cosignatures), INVALID (a policy that
 * names a witness twice or asks for no witness or more than it names).
 */
function openFrozenCheckpoint(
  platform: HsmPlatform,
  frozen: FrozenTerms,
  note: Uint8Array,
): { origin: string; size: number; root: Uint8Array } {
  const crypto = platform.crypto;
  const hash = (b: Uint8Array) => crypto.sha256(b);
  const verify = (k: Uint8Array, m: Uint8Array, sig: Uint8Array) =>
    ed25519PointProblem(k) === null &&
    ed25519SignatureProblem(sig) === null &&
    crypto.ed25519Verify(k, m, sig);
  const policy = frozen.witnessPolicy;
  const keys = policy.witnesses.map((w) => toHex(w.key));
  if (
    !Number.isInteger(policy.threshold) ||
    policy.threshold < 1 ||
    policy.threshold > policy.witnesses.length ||
    new Set(keys).size !== keys.length
  )
    refuse(
      ErrorCode.Invalid,
      `the witness policy (${policy.threshold} of ${policy.witnesses.length}, each key once) cannot be met`,
    );
  try {
    // The origin is read before the signatures are checked only to name the log's key; a checkpoint
    // the frozen key did not sign under that name is refused below.
    const text = parseNote(note).text;
    const origin = parseCheckpoint(text).origin;
    const log = noteVerifierWith(
      hash,
      {
        name: origin,
        type: SIG_ED25519,
        keyId: keyIdWith(hash, origin, SIG_ED25519, frozen.logKey),
        publicKey: frozen.logKey,
      },
      verify,
    );
    const witnesses: NoteVerifier[] = policy.witnesses.map((w) =>
      noteVerifierWith(
        hash,
        {
          name: w.name,
          type: SIG_COSIGNATURE_V1,
          keyId: keyIdWith(hash, w.name, SIG_COSIGNATURE_V1, w.key),
          publicKey: w.key,
        },
        verify,
      ),
    );
    const opened = openNote(note, [log, ...witnesses]);
    if (!opened.verified.some((v) => v.verifier === log))
      refuse(ErrorCode.BundleCheckpoint, "the checkpoint is not signed by the log key this fleet froze");
    const cosigners = new Set(opened.verified.filter((v) => v.verifier !== log).map((v) => v.name)).size;
    if (cosigners < policy.threshold)
      refuse(
        ErrorCode.BundleWitnesses,
        `the checkpoint has ${cosigners} witness cosignatures, ${policy.threshold} required`,
      );
    const cp = parseCheckpoint(opened.text);
    return { origin: cp.origin, size: cp.size, root: cp.root };
  } catch (e) {
    if (e instanceof BkvError) throw e;
    if (isTlogError(e) && e.code === TlogErrorCode.Unverified)
      refuse(ErrorCode.BundleCheckpoint, "the checkpoint is not signed by the log key this fleet froze");
    if (isTlogError(e)) refuse(ErrorCode.BundleCheckpoint, `the checkpoint does not open: ${e.message}`);
    throw e;
  }
}
