/**
 * What the log checks before it appends a fleet: the evidence proves the artifact. The evidence is
 * audited with the client's own verifier (auditEvidence: every member attested by a vendor root the
 * log is configured with, every member's signature over the statement, the policy, the
 * measurement), the statement froze this log's key and the request's namespace and epoch, and the
 * artifact says exactly what the statement says (artifactMismatches), within the longest validity
 * window a fleet counter-signs. Clients check all of this again themselves; the log's check keeps
 * what it publishes free of garbage (an operator's self-made keys with no HSM behind them).
 *
 * One HSM, one genesis: the log also refuses a fleet any of whose members' keys (signing or
 * agreement, compared as points) is a member key of a fleet it has already appended, in any
 * namespace (checkFreshMembers): an honest HSM takes part in one genesis in its life, so a key in two
 * fleets proves a cloned HSM or a rolled-back NVRAM.
 */
import { auditEvidence, groupReuse, type MemberIndex, reusedKeysText } from "@bkv/client";
import {
  artifactMismatches,
  BkvError,
  bytesEqual,
  decodeArtifact,
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  type FleetArtifact,
  type GenesisStatement,
  MAX_ARTIFACT_VALIDITY_MS,
  toHex,
} from "@bkv/wire";

export interface EvidencePolicy {
  /** Raw Ed25519 vendor root keys; a member's attestation must be signed by one of them. */
  readonly vendorRoots: readonly Uint8Array[];
  /**
   * Measurements the log accepts. Empty: any measurement that every member attests under a vendor
   * root (which code is acceptable is then the clients' pin, or the releases namespace).
   */
  readonly measurements: readonly Uint8Array[];
  /** The largest guess limit a logged fleet may have. */
  readonly maxGuessLimit: number;
  /** This log's raw Ed25519 key: the statement must have frozen it. */
  readonly logKey: Uint8Array;
  /** Development logs only: fleets smaller than the audit's minimum (1 member) are appended too. */
  readonly allowSmallFleet?: boolean;
}

/**
 * The one call of the client's evidence verifier. The log's vendor roots are the ones its operator
 * configured, pinned as production roots: the log takes no development flag for roots.
 */
function auditProblems(evidence: Uint8Array, st: GenesisStatement, p: EvidencePolicy): string[] {
  const report = auditEvidence(evidence, {
    vendorRoots: p.vendorRoots.map((key, i) => ({
      name: `log vendor root ${i + 1}`,
      key: toHex(key),
      test: false,
    })),
    // No measurement configured: whatever code every member attests (clients pin which code).
    measurements: p.measurements.length === 0 ? [st.measurement] : [...p.measurements],
    maxGuessLimit: p.maxGuessLimit,
    allowSmallFleet: p.allowSmallFleet === true,
  });
  return report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

function refuse(problems: string[]): never {
  throw new BkvError(
    ErrorCode.BundleEvidence,
    `the evidence does not prove the artifact: ${problems.join("; ")}`,
  );
}

/**
 * Throw BUNDLE_EVIDENCE unless `evidence` proves `artifact` for (namespace, epoch) under the
 * policy. Returns the decoded artifact and statement.
 */
export function checkFleetEvidence(
  req: { namespace: string; epoch: number; artifact: Uint8Array; evidence: Uint8Array },
  policy: EvidencePolicy,
): { artifact: FleetArtifact; statement: GenesisStatement } {
  if (policy.vendorRoots.length === 0) refuse(["the log is configured with no vendor root"]);
  let artifact: FleetArtifact;
  let st: GenesisStatement;
  try {
    artifact = decodeArtifact(req.artifact);
  } catch (e) {
    refuse([`the artifact does not decode: ${(e as Error).message}`]);
  }
  try {
    st = decodeStatement(decodeEvidence(req.evidence).statement);
  } catch (e) {
    refuse([`the evidence does not decode: ${(e as Error).message}`]);
  }
  const problems: string[] = [];
  if (artifact.namespace !== req.namespace || artifact.epoch !== req.epoch) {
    problems.push(
      `the artifact is for (${artifact.namespace}, ${artifact.epoch}), not (${req.namespace}, ${req.epoch})`,
    );
  }
  problems.push(...auditProblems(req.evidence, st, policy));
  if (!bytesEqual(st.logKey, policy.logKey)) {
    problems.push(`the fleet froze another log's key (${toHex(st.logKey).slice(0, 16)}…) at genesis`);
  }
  const differs = artifactMismatches(artifact, st);
  if (differs.length > 0)
    problems.push(`the artifact differs from the signed statement in: ${differs.join(", ")}`);
  const window = artifact.notAfter - artifact.notBefore;
  if (window > MAX_ARTIFACT_VALIDITY_MS) {
    problems.push(
      `the validity window (${window} ms) is longer than the ${MAX_ARTIFACT_VALIDITY_MS} ms allowed`,
    );
  }
  if (problems.length > 0) refuse(problems);
  return { artifact, statement: st };
}

/** A fleet the log has appended, as the member index remembers it. */
export interface LoggedFleetRef {
  readonly index: number;
  readonly namespace: string;
  readonly epoch: number;
  /** hex */
  readonly fleetId: string;
}

export type LoggedMembers = MemberIndex<LoggedFleetRef>;

/**
 * The fleet an appended entry's evidence holds (its genesis statement), or undefined for an entry
 * that is not a fleet: a release entry (empty evidence) or evidence that does not decode.
 */
export function loggedFleetOf(evidence: Uint8Array): GenesisStatement | undefined {
  if (evidence.length === 0) return undefined;
  try {
    return decodeStatement(decodeEvidence(evidence).statement);
  } catch {
    return undefined;
  }
}

/**
 * Throw BUNDLE_EVIDENCE if a member of `st` has a signing or agreement key that a fleet in
 * `logged` (every fleet this log appended) already has: one HSM in two geneses.
 */
export function checkFreshMembers(st: GenesisStatement, logged: LoggedMembers): void {
  const reused = logged.reused(st.members);
  if (reused.length === 0) return;
  const which = groupReuse(reused).map(
    (g) =>
      `member ${g.member} (signing key ${toHex(st.members[g.member - 1]!.signKey).slice(0, 16)}…): its ${reusedKeysText(g.keys)} ${g.keys.length === 1 ? "is a member key" : "are member keys"} of fleet ${g.earlier.fleetId} (entry ${g.earlier.index}: ${g.earlier.namespace} epoch ${g.earlier.epoch})`,
  );
  throw new BkvError(
    ErrorCode.BundleEvidence,
    `a member of this fleet already took part in the genesis of a logged fleet (an HSM takes part in one genesis in its life: a cloned HSM or a rolled-back NVRAM): ${which.join("; ")}`,
  );
}
