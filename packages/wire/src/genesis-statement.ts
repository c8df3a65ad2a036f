/**
 * The genesis statement every member of a new fleet signs, and the fleet's deployment evidence.
 *
 * The statement fixes, for the life of the fleet: its id, its members (their attestations, so
 * node i is members[i - 1]) and the fresh challenge each member made for this ceremony (an HSM takes
 * part in one genesis in its life, and a package answers one boot of one HSM), the measurement of the code they all run, the policy (guess limit,
 * N, quorum), the fleet's public keys and the time of the ceremony, and what the fleet will accept
 * of a successor (docs/migration.md §2): the release key under which accepted code is published in
 * the log, and the highest guess limit a successor may have. The HSM core holds no key and has no
 * message that could change any of these afterwards.
 *
 * The evidence is what anyone needs to check a fleet from public data: the statement and every
 * member's signature over it.
 */
import { type Attestation, encodeAttestation, MEASUREMENT_LENGTH, readAttestation } from "./attestation.js";
import { utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { BkvError, check, ErrorCode } from "./errors.js";

const STATEMENT_DOMAIN = utf8("bkv-genesis-statement/v4");
/** Length of the log's raw Ed25519 public key the fleet freezes at genesis. */
export const LOG_KEY_LENGTH = 32;
/** Length of the release key's raw Ed25519 public key the fleet freezes at genesis. */
export const RELEASE_KEY_LENGTH = 32;
const EVIDENCE_DOMAIN = utf8("bkv-fleet-evidence/v2");
export const FLEET_ID_LENGTH = 16;
export const MAX_MEMBERS = 9;
/** The longest namespace (UTF-8 bytes) a statement or artifact carries. */
export const MAX_NAMESPACE_BYTES = 255;
/** The random challenge an uninitialized HSM makes at boot (memory only) for its one genesis. */
export const GENESIS_CHALLENGE_LENGTH = 32;

export interface FleetPolicy {
  guessLimit: number;
  /** Number of members. */
  n: number;
  /** Members needed to commit or elect: a majority, floor(n / 2) + 1. */
  quorum: number;
}

export interface GenesisStatement {
  fleetId: Uint8Array;
  /**
   * Where the fleet is published, frozen at genesis: the deployment's namespace in the transparency
   * log, the fleet's epoch within it, and the log's raw Ed25519 key (the key of its bundle
   * signatures). The fleet counter-signs only bundles of this namespace and epoch that this log signed.
   */
  namespace: string;
  epoch: number;
  logKey: Uint8Array;
  /**
   * The release key (raw Ed25519, RELEASE_KEY_LENGTH bytes) under which accepted code is published
   * in the log: a successor's measurement counts only in a release signed by this key.
   */
  releaseKey: Uint8Array;
  members: Attestation[];
  /**
   * challenges[i] is member i + 1's challenge, as its booted frame reported it: fresh random bytes
   * (GENESIS_CHALLENGE_LENGTH) it made at boot and holds only in memory until this genesis.
   */
  challenges: Uint8Array[];
  measurement: Uint8Array;
  policy: FleetPolicy;
  /**
   * The highest guess limit a successor fleet may have: 1 to policy.guessLimit (a successor never
   * gives a record more guesses than this fleet did; decodeStatement refuses a higher one).
   */
  maxSuccessorGuessLimit: number;
  /** X25519 public key clients seal vault requests to (HPKE). */
  vaultPublicKey: Uint8Array;
  /** Ed25519 public key the fleet counter-signs validation bundles with. */
  fleetSigningKey: Uint8Array;
  /** Milliseconds since the epoch, by the creating HSM's clock. */
  time: number;
}

export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Why a fleet with guess limit `guessLimit` may not freeze `max` as its successors' highest guess
 * limit, or null if it may: the rule is 1 <= max <= guessLimit (a successor never gives a record
 * more guesses than its predecessor did, and one with no guess at all serves no one).
 */
export function successorLimitProblem(max: number, guessLimit: number): string | null {
  if (!Number.isInteger(max) || max < 1)
    return `the maximum successor guess limit must be at least 1, not ${max}`;
  if (max > guessLimit)
    return `the maximum successor guess limit ${max} is above the fleet's own guess limit ${guessLimit}`;
  return null;
}

function domainCheck(r: Reader, domain: Uint8Array, what: string): void {
  const d = r.fixed(domain.length, "domain");
  check(
    d.every((x, i) => x === domain[i]),
    `${what}: wrong domain`,
  );
}

export function encodeStatement(s: GenesisStatement): Uint8Array {
  return new Writer()
    .fixed(STATEMENT_DOMAIN)
    .fixed(s.fleetId)
    .string(s.namespace)
    .u32(s.epoch)
    .fixed(s.logKey)
    .fixed(s.releaseKey)
    .list(s.members, (w, m) => {
      w.bytes(encodeAttestation(m));
    })
    .list(s.challenges, (w, c) => {
      w.bytes(c);
    })
    .fixed(s.measurement)
    .u32(s.policy.guessLimit)
    .u32(s.policy.n)
    .u32(s.policy.quorum)
    .u32(s.maxSuccessorGuessLimit)
    .fixed(s.vaultPublicKey)
    .fixed(s.fleetSigningKey)
    .u64(s.time)
    .finish();
}

export function decodeStatement(b: Uint8Array): GenesisStatement {
  const r = new Reader(b, "genesis statement");
  domainCheck(r, STATEMENT_DOMAIN, "genesis statement");
  const fleetId = r.fixed(FLEET_ID_LENGTH, "fleet id");
  const namespace = r.string("namespace", MAX_NAMESPACE_BYTES);
  check(namespace.length > 0, "genesis statement: empty namespace");
  const epoch = r.u32("epoch");
  const logKey = r.fixed(LOG_KEY_LENGTH, "log key");
  const releaseKey = r.fixed(RELEASE_KEY_LENGTH, "release key");
  const members = r.list("members", MAX_MEMBERS, (r) => {
    const inner = new Reader(r.bytes("attestation", 4096), "attestation");
    const a = readAttestation(inner);
    inner.end();
    return a;
  });
  // Decoded at any length up to 64 so an audit can name a wrong one; HSMs check the exact length.
  const challenges = r.list("challenges", MAX_MEMBERS, (r) => r.bytes("challenge", 64));
  const measurement = r.fixed(MEASUREMENT_LENGTH, "measurement");
  const policy = { guessLimit: r.u32("guess limit"), n: r.u32("n"), quorum: r.u32("quorum") };
  const maxSuccessorGuessLimit = r.u32("max successor guess limit");
  const successorProblem = successorLimitProblem(maxSuccessorGuessLimit, policy.guessLimit);
  if (successorProblem !== null)
    throw new BkvError(ErrorCode.Policy, `genesis statement: ${successorProblem}`);
  const vaultPublicKey = r.fixed(32, "vault public key");
  const fleetSigningKey = r.fixed(32, "fleet signing key");
  const time = r.u64("time");
  r.end();
  return {
    fleetId,
    namespace,
    epoch,
    logKey,
    releaseKey,
    members,
    challenges,
    measurement,
    policy,
    maxSuccessorGuessLimit,
    vaultPublicKey,
    fleetSigningKey,
    time,
  };
}

/**
 * A fleet's evidence: the statement and every member's signature over it. Nothing else: every claim
 * in it is signed by every member. (The ceremony tooling's own log of the messages it passed is the
 * operator's record, unsigned, and no part of the evidence.)
 */
export interface FleetEvidence {
  /** The encoded genesis statement, exactly the bytes the members signed. */
  statement: Uint8Array;
  /** signatures[i] is member i + 1's Ed25519 signature over `statement`. */
  signatures: Uint8Array[];
}

export function encodeEvidence(e: FleetEvidence): Uint8Array {
  return new Writer()
    .fixed(EVIDENCE_DOMAIN)
    .bytes(e.statement)
    .list(e.signatures, (w, s) => {
      w.bytes(s);
    })
    .finish();
}

export function decodeEvidence(b: Uint8Array): FleetEvidence {
  const r = new Reader(b, "fleet evidence");
  domainCheck(r, EVIDENCE_DOMAIN, "fleet evidence");
  const statement = r.bytes("statement", 1 << 16);
  const signatures = r.list("signatures", MAX_MEMBERS, (r) => r.bytes("signature", 64));
  r.end();
  return { statement, signatures };
}
