/**
 * Typed errors with stable codes. Every error that crosses a module boundary is a BkvError whose
 * `code` is one of ErrorCode; callers branch on the code, people read the message.
 */

export const ErrorCode = {
  /** Bytes that do not decode: wrong magic, version, length, trailing data. */
  Malformed: "MALFORMED",
  /** A value decoded but is out of range or not allowed here. */
  Invalid: "INVALID",
  /** The request was seen before (same request id). */
  Replay: "REPLAY",
  /** The request's timestamp is outside the window the vault accepts. */
  Expired: "EXPIRED",
  /** Decryption or authentication failed: wrong key, altered bytes. */
  Authentication: "AUTHENTICATION",
  /** No record for this user: never registered, deleted or destroyed after the last guess. */
  NoRecord: "NO_RECORD",
  /** A registration that would replace this user's record, without asking to replace it. */
  RecordExists: "RECORD_EXISTS",
  /** The PIN was wrong; guessesRemaining says how many are left. */
  WrongPin: "WRONG_PIN",
  /** No login in progress for this session id (finished, expired, or never started). */
  NoSession: "NO_SESSION",
  /** The vault could not be reached or could not commit. */
  Unavailable: "UNAVAILABLE",
  /** The HSM found its host storage older than its NVRAM: an old disk was restored. */
  Rollback: "ROLLBACK",
  /** The HSM's state or storage is inconsistent in a way that is not a rollback. */
  Corrupt: "CORRUPT",
  /** Backup file errors. */
  Truncated: "TRUNCATED",
  WrongKey: "WRONG_KEY",
  /** Caller is not allowed to do this (token, user mismatch). */
  Forbidden: "FORBIDDEN",
  RateLimited: "RATE_LIMITED",
  /** Genesis: an HSM's attestation is not signed by a trusted vendor root or does not match its keys. */
  Attestation: "ATTESTATION",
  /**
   * A vendor attestation document (AWS Nitro) whose time is outside the validity of a certificate
   * of its chain: judged at the document's own timestamp, which the error names.
   */
  AttestationExpired: "ATTESTATION_EXPIRED",
  /** A genuine attestation document that does not name the member's keys (its user data differs). */
  AttestationKeys: "ATTESTATION_KEYS",
  /**
   * Genesis: a member runs other code (its attested measurement differs). A successor's check: a
   * member attests other code, or the successor's code is not released under the frozen release key.
   */
  Measurement: "MEASUREMENT",
  /**
   * Genesis: the fleet policy (guess limit, N, quorum, highest successor guess limit) is not allowed
   * or differs from what was sealed; a successor's guess limit above the frozen maximum.
   */
  Policy: "POLICY",
  /** Genesis: a member's signature over the genesis statement is missing or does not verify. */
  Signature: "SIGNATURE",
  /**
   * Genesis: a package or member list answers a challenge this HSM did not make in its current
   * boot (a replayed or stale package, or an HSM restarted since it reported its challenge).
   */
  GenesisChallenge: "GENESIS_CHALLENGE",
  /**
   * Genesis: this HSM already took part in a genesis (its NVRAM names the fleet): it takes part in
   * no other, and one restarted before it finished is spent. A new HSM (or wiped NVRAM, which means
   * a new identity) is needed.
   */
  GenesisSpent: "GENESIS_SPENT",
  /** Validation bundle: no bundle came with the vault's answer. */
  BundleMissing: "BUNDLE_MISSING",
  /** Validation bundle: for another namespace than the one the client pins. */
  BundleNamespace: "BUNDLE_NAMESPACE",
  /**
   * Validation bundle: the checkpoint is not signed by the pinned log key. A successor's check: not
   * signed by the log key the old fleet froze, or not a checkpoint.
   */
  BundleCheckpoint: "BUNDLE_CHECKPOINT",
  /**
   * Validation bundle (or a successor's check): fewer valid witness cosignatures on the checkpoint
   * than the threshold.
   */
  BundleWitnesses: "BUNDLE_WITNESSES",
  /** Validation bundle: the checkpoint is smaller than one the client has already seen. */
  BundleRollback: "BUNDLE_ROLLBACK",
  /** Validation bundle: a checkpoint of the same size as one seen, with another root (split view). */
  BundleSplitView: "BUNDLE_SPLIT_VIEW",
  /** Validation bundle: no valid consistency proof from the largest checkpoint seen. */
  BundleInconsistent: "BUNDLE_INCONSISTENT",
  /**
   * Validation bundle: the artifact is not in the log (its inclusion proof fails). A successor's
   * check: its entry (artifact and evidence) or its release is not in the log.
   */
  BundleNotLogged: "BUNDLE_NOT_LOGGED",
  /** Validation bundle: the log's signature over the artifact does not verify. */
  BundleLogSignature: "BUNDLE_LOG_SIGNATURE",
  /** Validation bundle: the fleet's counter-signature does not verify. */
  BundleNotCountersigned: "BUNDLE_NOT_COUNTERSIGNED",
  /** Validation bundle: the artifact is outside its validity window. */
  BundleExpired: "BUNDLE_EXPIRED",
  /**
   * Validation bundle: the fleet's evidence is missing, does not decode, or does not prove what
   * the artifact says (attestations to a pinned vendor root, every member's signature, N >= 3, the
   * statement's keys, members, measurement and policy exactly the artifact's), or the statement
   * froze another namespace, log key or release key than the client pins.
   */
  BundleEvidence: "BUNDLE_EVIDENCE",
  /** Validation bundle: the fleet runs code whose measurement is neither pinned nor released. */
  BundleMeasurement: "BUNDLE_MEASUREMENT",
  /** Validation bundle: the fleet's policy is weaker than the client pins (guess limit above the maximum). */
  BundlePolicy: "BUNDLE_POLICY",
  /** A host (not the HSM) refused or failed: its word is no verdict on the PIN or the record. */
  HostError: "HOST_ERROR",
  /** The HSM refused to counter-sign: another namespace, epoch or log key, or a window too long. */
  CountersignRefused: "COUNTERSIGN_REFUSED",
  /** Log: the submitter's signature over an /add is missing or wrong for the namespace. */
  SubmitterSignature: "SUBMITTER_SIGNATURE",
  /** Witness: its state was lost or restored while its key remains; it fails closed. */
  WitnessState: "WITNESS_STATE",
  /** The vault's response could not be verified against the trusted keys. */
  Untrusted: "UNTRUSTED",
  /** A host's configuration is missing, does not parse, or names something wrong (host/src/config.ts). */
  Config: "CONFIG",
  /** A port a listener was configured for is taken by another process. */
  PortInUse: "PORT_IN_USE",
  /**
   * The host's answer about a record (its blob, proof, or a sync stream) does not match the record
   * tree's root the HSM holds: an old or forged record, a wrong proof, another user's record.
   */
  RecordProof: "RECORD_PROOF",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class BkvError extends Error {
  readonly code: ErrorCode;
  /** Present on WRONG_PIN and sometimes on NO_RECORD. */
  readonly guessesRemaining: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; guessesRemaining?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BkvError";
    this.code = code;
    this.guessesRemaining = options?.guessesRemaining;
  }
}

export function isBkvError(e: unknown, code?: ErrorCode): e is BkvError {
  return e instanceof BkvError && (code === undefined || e.code === code);
}

/** Throw MALFORMED unless cond holds. */
export function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new BkvError(ErrorCode.Malformed, message);
}
