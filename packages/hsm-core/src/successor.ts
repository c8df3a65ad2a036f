/**
 * The old fleet's check of a successor fleet (docs/migration.md §2), pure: no state, no log, no
 * wiring yet. Everything the host hands over is bytes; what they are checked against is what this
 * fleet's genesis froze (its namespace, epoch, log key, release key and highest successor guess
 * limit) and the vendor roots this HSM's platform trusts.
 *
 * It checks §2 point 1 (every successor member attested to a vendor root this HSM trusts, through
 * checkMembers, the code path genesis uses for the fleet's own members: strict keys, no key twice,
 * every member attesting the successor's measurement), point 3 (every member's signature over the
 * successor's statement, a fresh challenge per member, the namespace and the log key equal to this
 * fleet's, the epoch this fleet's + 1, a guess limit no higher than the frozen maximum, N and
 * quorum consistent) and the first half of point 2 (the successor's measurement in a release
 * signed by the frozen release key). Not yet: that release's and the successor's artifact entry's
 * inclusion in the log under the frozen log key (points 2 and 4).
 */
import {
  type Attestation,
  BkvError,
  bytesEqual,
  decodeEvidence,
  decodeSignedRelease,
  decodeStatement,
  ErrorCode,
  ed25519PointProblem,
  ed25519SignatureProblem,
  encodeAttestation,
  type FleetEvidence,
  type GenesisStatement,
  quorumOf,
  releaseSignedBytes,
  type SignedRelease,
  toHex,
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

/** What this fleet's genesis froze that a successor is checked against. */
export type FrozenTerms = Pick<
  Genesis,
  "namespace" | "epoch" | "logKey" | "releaseKey" | "maxSuccessorGuessLimit"
>;

/** What the host hands over about a successor: bytes, nothing believed until checked. */
export interface SuccessorEvidence {
  /** The successor's encoded FleetEvidence (its genesis statement and every member's signature). */
  evidence: Uint8Array;
  /** The signed release (wire release.ts) of the successor's measurement. */
  release: Uint8Array;
}

export interface CheckedSuccessor {
  statement: GenesisStatement;
  members: Attestation[];
  release: SignedRelease;
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
  return { statement: st, members, release };
}
