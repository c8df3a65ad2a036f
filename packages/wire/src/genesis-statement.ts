/**
 * The genesis statement every member of a new fleet signs, and the fleet's deployment evidence.
 *
 * The statement fixes, for the life of the fleet: its id, its members (their attestations, so
 * node i is members[i - 1]) and the fresh challenge each member made for this ceremony (an HSM takes
 * part in one genesis in its life, and a package answers one boot of one HSM), the measurement of the code they all run, the policy (guess limit,
 * N, quorum), the fleet's public keys and the time of the ceremony, and what the fleet will accept
 * of a successor (docs/migration.md §2): the release key under which accepted code is published in
 * the log, the highest guess limit a successor may have, and the log's witness policy (the witnesses'
 * cosignature/v1 keys with their names, and how many must cosign a checkpoint) that the successor's
 * log entries are checked under. The HSM core holds no key and has no message that could change any
 * of these afterwards.
 *
 * The evidence is what anyone needs to check a fleet from public data: the statement and every
 * member's signature over it.
 */
import { type Attestation, encodeAttestation, MEASUREMENT_LENGTH, readAttestation } from "./attestation.js";
import { bytesEqual, toHex, utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { ed25519PointProblem } from "./ed25519-keys.js";
import { BkvError, check, ErrorCode } from "./errors.js";
import { isValidKeyName } from "./signed-note.js";

const STATEMENT_DOMAIN = utf8("bkv-genesis-statement/v5");
/** Length of the log's raw Ed25519 public key the fleet freezes at genesis. */
export const LOG_KEY_LENGTH = 32;
/** Length of the release key's raw Ed25519 public key the fleet freezes at genesis. */
export const RELEASE_KEY_LENGTH = 32;
const EVIDENCE_DOMAIN = utf8("bkv-fleet-evidence/v2");
export const FLEET_ID_LENGTH = 16;
export const MAX_MEMBERS = 9;
/** The longest namespace (UTF-8 bytes) a statement or artifact carries. */
export const MAX_NAMESPACE_BYTES = 255;
/** The most witnesses a genesis statement's witness policy names. */
export const MAX_WITNESSES = 16;
/** The longest witness name (UTF-8 bytes) a witness policy carries. */
export const MAX_WITNESS_NAME_BYTES = 255;
/** Length of a witness's raw Ed25519 cosignature/v1 key. */
export const WITNESS_KEY_LENGTH = 32;
/** The random challenge an uninitialized HSM makes at boot (memory only) for its one genesis. */
export const GENESIS_CHALLENGE_LENGTH = 32;

export interface FleetPolicy {
  guessLimit: number;
  /** Number of members. */
  n: number;
  /** Members needed to commit or elect: a majority, floor(n / 2) + 1. */
  quorum: number;
}

/**
 * The witnesses whose cosignatures make a checkpoint count: raw Ed25519 cosignature/v1 keys with
 * their names (a cosignature line names its witness; the key ID binds the name), and how many of
 * them must have cosigned (1 to the number of witnesses).
 */
export interface WitnessPolicy {
  witnesses: { name: string; key: Uint8Array }[];
  threshold: number;
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
  /**
   * The log's witness policy the fleet checks its successor's log entries under (docs/migration.md
   * §2): each witness once (key and name), none the log key, threshold 1 to the number of witnesses.
   */
  witnessPolicy: WitnessPolicy;
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

/**
 * Why `p` may not be frozen as the witness policy of a fleet whose log key is `logKey`, or null if
 * it may: 1 to MAX_WITNESSES witnesses, each a valid note key name of at most MAX_WITNESS_NAME_BYTES
 * and a strict raw Ed25519 point of WITNESS_KEY_LENGTH bytes, no key and no name twice (one witness
 * would count twice, or two keys under one name), not the log key (the log operator would witness
 * its own checkpoints), and a threshold from 1 to the number of witnesses.
 */
export function witnessPolicyProblem(p: WitnessPolicy, logKey: Uint8Array): string | null {
  const n = p.witnesses.length;
  if (n < 1 || n > MAX_WITNESSES) return `the witness policy names ${n} witnesses, not 1 to ${MAX_WITNESSES}`;
  const keys = new Set<string>();
  const names = new Set<string>();
  for (const w of p.witnesses) {
    if (!isValidKeyName(w.name) || utf8(w.name).length > MAX_WITNESS_NAME_BYTES)
      return `the witness name ${JSON.stringify(w.name.slice(0, 64))} is not a key name of 1 to ${MAX_WITNESS_NAME_BYTES} bytes`;
    if (w.key.length !== WITNESS_KEY_LENGTH)
      return `witness ${w.name}'s key is ${w.key.length} bytes, not ${WITNESS_KEY_LENGTH}`;
    const problem = ed25519PointProblem(w.key);
    if (problem !== null) return `witness ${w.name}'s key is ${problem}`;
    if (bytesEqual(w.key, logKey))
      return `witness ${w.name}'s key is the log's own key: the log would witness itself`;
    const hex = toHex(w.key);
    if (keys.has(hex)) return `one witness key is named twice (${w.name}): it would count twice`;
    if (names.has(w.name)) return `two witness keys are named ${w.name}`;
    keys.add(hex);
    names.add(w.name);
  }
  if (!Number.isInteger(p.threshold) || p.threshold < 1 || p.threshold > n)
    return `the witness threshold must be 1 to ${n} (the witnesses named), not ${p.threshold}`;
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
    .list(s.witnessPolicy.witnesses, (w, x) => {
      w.string(x.name).fixed(x.key);
    })
    .u32(s.witnessPolicy.threshold)
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
  const witnesses = r.list("witnesses", MAX_WITNESSES, (r) => ({
    name: r.string("witness name", MAX_WITNESS_NAME_BYTES),
    key: r.fixed(WITNESS_KEY_LENGTH, "witness key"),
  }));
  const witnessPolicy = { witnesses, threshold: r.u32("witness threshold") };
  const witnessProblem = witnessPolicyProblem(witnessPolicy, logKey);
  if (witnessProblem !== null) throw new BkvError(ErrorCode.Invalid, `genesis statement: ${witnessProblem}`);
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
    witnessPolicy,
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
