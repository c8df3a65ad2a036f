/**
 * What the log checks before it appends to a handovers namespace (docs/migration.md §2): the
 * artifact is a signed handover statement (wire handover.ts) of the fleets of the namespace it
 * serves, the entry's epoch is the old fleet's, and the evidence is empty (the signature travels in
 * the artifact). Against what the log itself holds:
 *
 * - the old fleet (namespace, epoch) is logged, its fleet id is the statement's, and its fleet
 *   signing key (from its logged evidence) signed the statement;
 * - the successor (namespace, epoch + 1) is logged with exactly the evidence digest and fleet id
 *   the statement names;
 * - the checkpoint the statement names (size, root) is this log's tree at that size.
 *
 * So a logged handover always links two logged fleets of one namespace, and only the old fleet's
 * key can make one. Refusals: 422 with code MALFORMED (not a handover, evidence given, another
 * namespace or epoch), INVALID (a fleet not logged or not the one named, a checkpoint this log never
 * had) or SIGNATURE (not signed by the old fleet's key).
 */
import { ed25519VerifyStrict } from "@bkv/tlog";
import {
  BkvError,
  bytesEqual,
  decodeEvidence,
  decodeSignedHandover,
  decodeStatement,
  ErrorCode,
  type GenesisStatement,
  handoverSignedBytes,
  type SignedHandover,
  toHex,
} from "@bkv/wire";

/** What the check reads from the log: a logged fleet's statement and evidence digest, a root. */
export interface HandoverLookups {
  fleet(
    namespace: string,
    epoch: number,
  ): { statement: GenesisStatement; evidenceDigest: Uint8Array } | undefined;
  /** The root of this log's tree at `size`, if it has that many entries. */
  root(size: number): Uint8Array | undefined;
}

/** The statement of a logged fleet's evidence (which the log checked when it appended it). */
export function loggedStatement(evidence: Uint8Array): GenesisStatement {
  return decodeStatement(decodeEvidence(evidence).statement);
}

export function checkHandover(
  req: { namespace: string; epoch: number; artifact: Uint8Array; evidence: Uint8Array },
  fleets: string,
  log: HandoverLookups,
): SignedHandover {
  let h: SignedHandover;
  try {
    h = decodeSignedHandover(req.artifact);
  } catch (e) {
    throw new BkvError(
      ErrorCode.Malformed,
      `the artifact is not a handover statement: ${(e as Error).message}`,
    );
  }
  if (req.evidence.length !== 0)
    throw new BkvError(ErrorCode.Malformed, "a handover carries its signature; its evidence must be empty");
  if (h.namespace !== fleets)
    throw new BkvError(
      ErrorCode.Malformed,
      `the handover is of ${JSON.stringify(h.namespace)}'s fleets; ${req.namespace} logs ${JSON.stringify(fleets)}'s`,
    );
  if (h.epoch !== req.epoch)
    throw new BkvError(
      ErrorCode.Malformed,
      `the handover is epoch ${h.epoch}'s, logged as epoch ${req.epoch} (a handover is logged at the old fleet's epoch)`,
    );
  const old = log.fleet(fleets, h.epoch);
  if (old === undefined || !bytesEqual(old.statement.fleetId, h.fleetId))
    throw new BkvError(
      ErrorCode.Invalid,
      `(${fleets}, ${h.epoch}) ${old === undefined ? "is not logged" : "is another fleet than the handover names"}`,
    );
  const successor = log.fleet(fleets, h.successorEpoch);
  if (successor === undefined)
    throw new BkvError(ErrorCode.Invalid, `the successor (${fleets}, ${h.successorEpoch}) is not logged`);
  if (
    !bytesEqual(successor.evidenceDigest, h.successorEvidenceDigest) ||
    !bytesEqual(successor.statement.fleetId, h.successorFleetId)
  )
    throw new BkvError(
      ErrorCode.Invalid,
      `the successor logged at (${fleets}, ${h.successorEpoch}) is not the one the handover names`,
    );
  const root = log.root(h.checkpointSize);
  if (root === undefined || !bytesEqual(root, h.checkpointRoot))
    throw new BkvError(
      ErrorCode.Invalid,
      `this log never had the checkpoint the handover names (size ${h.checkpointSize}, root ${toHex(h.checkpointRoot)})`,
    );
  if (!ed25519VerifyStrict(old.statement.fleetSigningKey, handoverSignedBytes(h), h.signature))
    throw new BkvError(
      ErrorCode.Signature,
      `the handover is not signed by the fleet signing key of (${fleets}, ${h.epoch})`,
    );
  return h;
}
