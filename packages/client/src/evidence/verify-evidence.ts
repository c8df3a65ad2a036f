/**
 * The client's check of a fleet's evidence against its pins, before it trusts an artifact: the
 * audit (auditEvidence, the one verifier) with the pinned vendor roots, measurements, policy,
 * namespace, log key and release key (if the pins name one: the fleet must have frozen that key,
 * check "statement.release-key", else BUNDLE_EVIDENCE) and the pinned witnesses with their
 * threshold (the fleet must have frozen that witness policy, check "statement.witnesses", else
 * BUNDLE_EVIDENCE), then the artifact must say exactly what the verified statement says.
 * Throws BUNDLE_EVIDENCE, BUNDLE_MEASUREMENT or BUNDLE_POLICY; returns the verified statement.
 */
import { parseVerifierKey } from "@bkv/tlog";
import {
  artifactMismatches,
  BkvError,
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  type FleetArtifact,
  fromHex,
  type GenesisStatement,
} from "@bkv/wire";
import { type AuditReport, auditEvidence } from "../audit/evidence-audit.js";
import type { TrustPins } from "../bundle/pins.js";

/** The code for a failed audit: evidence that proves nothing first, then other code, then a weaker policy. */
function codeOf(failed: string[]): ErrorCode {
  const rest = failed.filter((n) => n !== "measurement.source" && n !== "policy.guess-limit");
  if (rest.length > 0) return ErrorCode.BundleEvidence;
  if (failed.includes("measurement.source")) return ErrorCode.BundleMeasurement;
  return ErrorCode.BundlePolicy;
}

/** The audit of `evidence` under `pins`, for the fleet `artifact` names (report only, never throws). */
export function auditUnderPins(evidence: Uint8Array, artifact: FleetArtifact, pins: TrustPins): AuditReport {
  return auditEvidence(evidence, {
    vendorRoots: pins.vendorRoots,
    measurements: pins.measurements.map(fromHex),
    maxGuessLimit: pins.maxGuessLimit,
    expectedNamespace: pins.namespace,
    expectedEpoch: artifact.epoch,
    expectedLogKey: parseVerifierKey(pins.logKey).publicKey,
    ...(pins.release === undefined ? {} : { expectedReleaseKey: fromHex(pins.release.key) }),
    expectedWitnessPolicy: {
      witnesses: pins.witnessKeys.map((k) => {
        const v = parseVerifierKey(k);
        return { name: v.name, key: v.publicKey };
      }),
      threshold: pins.witnessThreshold,
    },
    ...(pins.allowTestRoots === true ? { allowTestRoots: true } : {}),
    ...(pins.allowSmallFleet === true ? { allowSmallFleet: true } : {}),
  });
}

export function verifyFleetEvidence(
  evidence: Uint8Array,
  artifact: FleetArtifact,
  pins: TrustPins,
): GenesisStatement {
  const report = auditUnderPins(evidence, artifact, pins);
  if (!report.ok) {
    const failed = report.checks.filter((c) => !c.ok);
    throw new BkvError(
      codeOf(failed.map((c) => c.name)),
      `the fleet's evidence does not hold: ${failed.map((c) => `${c.name} (${c.detail})`).join("; ")}`,
    );
  }
  const st = decodeStatement(decodeEvidence(evidence).statement);
  const diffs = artifactMismatches(artifact, st);
  if (diffs.length > 0)
    throw new BkvError(
      ErrorCode.BundleEvidence,
      `the artifact differs from the fleet's verified genesis statement in: ${diffs.join(", ")}`,
    );
  return st;
}
