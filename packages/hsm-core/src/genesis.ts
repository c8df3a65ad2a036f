/**
 * Fleet genesis. One HSM checks every member's attestation (a trusted vendor root, the same code
 * measurement as its own), creates the fleet secrets (OPAQUE server setup, HPKE vault key, fleet
 * signing key) in the genesis entry, the first entry of every member's log, and seals that entry to
 * each member under a key from the P-256 agreement of the creator's and the member's identity keys.
 * It drafts the genesis statement from the entry. Each member opens its package, checks the entry,
 * every attestation and that the statement is exactly the one the entry implies, and signs it.
 * Only when it holds every member's signature over the statement does a member store the entry.
 *
 * One genesis per HSM: an uninitialized HSM makes a fresh random challenge at each boot (memory
 * only). The creator takes every member's challenge into the entry and the statement, and each
 * member's package carries its own; a member joins only with a package that answers its current
 * challenge, so a saved package cannot be replayed after a restart. The creator records "creator
 * of fleet X" in NVRAM before it seals anything, a member "joiner of fleet X" before it signs; an
 * HSM whose NVRAM names a fleet takes part in no other genesis, and one restarted before its
 * genesis entry was stored is spent.
 */
import {
  type Attestation,
  attestationSignedBytes,
  BkvError,
  bytesEqual,
  check,
  decodeAttestation,
  decodeStatement,
  ErrorCode,
  ed25519PointProblem,
  ed25519SignatureProblem,
  encodeStatement,
  GENESIS_CHALLENGE_LENGTH,
  type GenesisStatement,
  LOG_KEY_LENGTH,
  MAX_NAMESPACE_BYTES,
  p256PointProblem,
  quorumOf,
  RELEASE_KEY_LENGTH,
  Reader,
  successorLimitProblem,
  toHex,
  utf8,
  type WitnessPolicy,
  Writer,
  witnessPolicyProblem,
} from "@bkv/wire";
import type { NvramState } from "./nvram.js";
import type { HsmCrypto, HsmPlatform } from "./platform.js";
import { MAX_GUESS_LIMIT } from "./policy.js";
import { decodeRaftEntry, type Genesis, type RaftEntry } from "./raft-entry.js";

/** The platform's check of members attested by a vendor document, if it has one. */
export function vendorDocumentCheck(platform: HsmPlatform): ((a: Attestation) => void) | undefined {
  const f = platform.verifyVendorDocument;
  return f === undefined ? undefined : (a) => f.call(platform, a);
}

/** Fleet sizes the code allows: odd, so a majority is well defined, and at most 9. */
export function allowedFleetSize(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 9 && n % 2 === 1;
}

/**
 * Check the members of a fleet to be: each attestation decodes, is signed by a vendor root this HSM
 * trusts, and attests the same measurement as this HSM's own; every key is strict (the signing key
 * a canonical Ed25519 point not of small order, the vendor's signature canonical, the agreement key
 * a P-256 point on the curve), so no key stands for two members and no signature is made by no one;
 * no key appears twice. A member attested by a vendor document (the second attestation kind, AWS
 * Nitro) counts only if `checkDocument` (the platform's, HsmPlatform.verifyVendorDocument) accepts
 * it; a platform without one refuses such members.
 */
export function checkMembers(
  crypto: HsmCrypto,
  vendorRoots: Uint8Array[],
  ownMeasurement: Uint8Array,
  members: Uint8Array[],
  checkDocument?: (a: Attestation) => void,
): Attestation[] {
  if (!allowedFleetSize(members.length)) {
    throw new BkvError(
      ErrorCode.Policy,
      `a fleet has an odd number of members from 1 to 9, not ${members.length}`,
    );
  }
  // A root that is no strict point vouches for nothing (a small-order key "verifies" forgeries).
  const roots = vendorRoots.filter((r) => ed25519PointProblem(r) === null);
  const out: Attestation[] = [];
  for (const [i, bytes] of members.entries()) {
    let a: Attestation;
    try {
      a = decodeAttestation(bytes);
    } catch (e) {
      throw new BkvError(
        ErrorCode.Attestation,
        `member ${i + 1}: attestation does not decode: ${(e as Error).message}`,
      );
    }
    if (a.nitroDocument !== undefined) {
      if (checkDocument === undefined)
        throw new BkvError(
          ErrorCode.Attestation,
          `member ${i + 1}: attested by a ${a.platform} document, which this HSM's platform cannot check`,
        );
      try {
        checkDocument(a);
      } catch (e) {
        const code = e instanceof BkvError ? e.code : ErrorCode.Attestation;
        throw new BkvError(code, `member ${i + 1}: ${(e as Error).message}`);
      }
    } else {
      const sigProblem = ed25519SignatureProblem(a.signature);
      if (sigProblem !== null) {
        throw new BkvError(
          ErrorCode.Attestation,
          `member ${i + 1}: the vendor root's signature is not strict: ${sigProblem}`,
        );
      }
      const signed = attestationSignedBytes(a);
      if (!roots.some((root) => crypto.ed25519Verify(root, signed, a.signature))) {
        throw new BkvError(
          ErrorCode.Attestation,
          `member ${i + 1}: attestation is not signed by a trusted vendor root`,
        );
      }
    }
    const keyProblem = ed25519PointProblem(a.signKey);
    if (keyProblem !== null) {
      throw new BkvError(ErrorCode.Attestation, `member ${i + 1}: its signing key is ${keyProblem}`);
    }
    const agreeProblem = p256PointProblem(a.agreeKey);
    if (agreeProblem !== null) {
      throw new BkvError(
        ErrorCode.Attestation,
        `member ${i + 1}: its agreement key is invalid: ${agreeProblem}`,
      );
    }
    if (!bytesEqual(a.measurement, ownMeasurement)) {
      throw new BkvError(ErrorCode.Measurement, `member ${i + 1} runs other code (its measurement differs)`);
    }
    for (const b of out) {
      if (bytesEqual(a.signKey, b.signKey) || bytesEqual(a.agreeKey, b.agreeKey)) {
        throw new BkvError(ErrorCode.Attestation, `member ${i + 1} repeats another member's key`);
      }
    }
    out.push(a);
  }
  return out;
}

/**
 * Where the fleet is published, as genesis freezes it: a namespace of 1 to MAX_NAMESPACE_BYTES
 * bytes, an epoch (u32) and the log's raw Ed25519 key, a strict point.
 */
export function checkPublication(namespace: string, epoch: number, logKey: Uint8Array): void {
  const bytes = utf8(namespace).length;
  if (bytes < 1 || bytes > MAX_NAMESPACE_BYTES) {
    throw new BkvError(
      ErrorCode.Invalid,
      `the namespace must be 1 to ${MAX_NAMESPACE_BYTES} bytes of UTF-8, not ${bytes}`,
    );
  }
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) {
    throw new BkvError(ErrorCode.Invalid, `bad epoch ${epoch}`);
  }
  if (logKey.length !== LOG_KEY_LENGTH) {
    throw new BkvError(
      ErrorCode.Invalid,
      `the log key is a raw Ed25519 key of ${LOG_KEY_LENGTH} bytes, not ${logKey.length}`,
    );
  }
  const problem = ed25519PointProblem(logKey);
  if (problem !== null) throw new BkvError(ErrorCode.Invalid, `the log key is ${problem}`);
}

/**
 * What the fleet will accept of a successor, as genesis freezes it (docs/migration.md §2): the
 * release key, a raw Ed25519 key of RELEASE_KEY_LENGTH bytes and a strict point (INVALID
 * otherwise), and the highest guess limit a successor may have, 1 to the fleet's own guess limit
 * (POLICY otherwise: a successor never gives a record more guesses than this fleet does), and the
 * log's witness policy its successor's log entries are checked under (INVALID unless each witness is
 * named once with a strict key that is not the log key `logKey`, and the threshold is 1 to their
 * number: witnessPolicyProblem, the rule the statement decoder applies).
 */
export function checkSuccessorTerms(
  releaseKey: Uint8Array,
  maxSuccessorGuessLimit: number,
  guessLimit: number,
  witnessPolicy: WitnessPolicy,
  logKey: Uint8Array,
): void {
  if (releaseKey.length !== RELEASE_KEY_LENGTH) {
    throw new BkvError(
      ErrorCode.Invalid,
      `the release key is a raw Ed25519 key of ${RELEASE_KEY_LENGTH} bytes, not ${releaseKey.length}`,
    );
  }
  const problem = ed25519PointProblem(releaseKey);
  if (problem !== null) throw new BkvError(ErrorCode.Invalid, `the release key is ${problem}`);
  const limitProblem = successorLimitProblem(maxSuccessorGuessLimit, guessLimit);
  if (limitProblem !== null) throw new BkvError(ErrorCode.Policy, limitProblem);
  const witnessProblem = witnessPolicyProblem(witnessPolicy, logKey);
  if (witnessProblem !== null) throw new BkvError(ErrorCode.Invalid, witnessProblem);
}

/** The statement a genesis entry implies: what every member signs. */
export function statementOf(g: Genesis): GenesisStatement {
  return {
    fleetId: g.fleetId,
    namespace: g.namespace,
    epoch: g.epoch,
    logKey: g.logKey,
    releaseKey: g.releaseKey,
    members: g.members.map((m) => decodeAttestation(m)),
    challenges: g.challenges,
    measurement: g.measurement,
    policy: { guessLimit: g.guessLimit, n: g.members.length, quorum: quorumOf(g.members.length) },
    maxSuccessorGuessLimit: g.maxSuccessorGuessLimit,
    witnessPolicy: g.witnessPolicy,
    vaultPublicKey: g.hpkePublicKey,
    fleetSigningKey: g.fleetSigningKey,
    time: g.createdAt,
  };
}

/** The members' challenges: one per member, each GENESIS_CHALLENGE_LENGTH bytes, no two alike. */
export function checkChallenges(challenges: Uint8Array[], members: number): void {
  if (challenges.length !== members) {
    throw new BkvError(
      ErrorCode.GenesisChallenge,
      `${challenges.length} challenges for ${members} members: each member brings its own`,
    );
  }
  for (const [i, c] of challenges.entries()) {
    if (c.length !== GENESIS_CHALLENGE_LENGTH) {
      throw new BkvError(
        ErrorCode.GenesisChallenge,
        `member ${i + 1}'s challenge is ${c.length} bytes, not ${GENESIS_CHALLENGE_LENGTH}`,
      );
    }
    if (challenges.some((d, j) => j < i && bytesEqual(c, d))) {
      throw new BkvError(ErrorCode.GenesisChallenge, `member ${i + 1} repeats another member's challenge`);
    }
  }
}

/** Validate a configured guess limit against the code's bounds (1 to MAX_GUESS_LIMIT); throws POLICY. */
export function validateGuessLimit(guessLimit: number): void {
  if (!Number.isInteger(guessLimit) || guessLimit < 1 || guessLimit > MAX_GUESS_LIMIT) {
    throw new BkvError(
      ErrorCode.Policy,
      `the guess limit must be 1 to ${MAX_GUESS_LIMIT}, not ${guessLimit}`,
    );
  }
}

/** Check every member's signature over the statement; all must be present. */
export function checkSignatures(
  crypto: HsmCrypto,
  members: Attestation[],
  statement: Uint8Array,
  signatures: Uint8Array[],
): void {
  if (signatures.length !== members.length) {
    throw new BkvError(
      ErrorCode.Signature,
      `${signatures.length} signatures for ${members.length} members: every member must sign`,
    );
  }
  for (const [i, m] of members.entries()) {
    const problem = ed25519SignatureProblem(signatures[i]!);
    if (problem !== null) {
      throw new BkvError(
        ErrorCode.Signature,
        `member ${i + 1}'s signature over the genesis statement is not strict: ${problem}`,
      );
    }
    if (!crypto.ed25519Verify(m.signKey, statement, signatures[i]!)) {
      throw new BkvError(
        ErrorCode.Signature,
        `member ${i + 1}'s signature over the genesis statement does not verify`,
      );
    }
  }
}

/** Whether two witness policies are the same: the same witnesses (name and key) in the same order, the same threshold. */
export function sameWitnessPolicy(a: WitnessPolicy, b: WitnessPolicy): boolean {
  return (
    a.threshold === b.threshold &&
    a.witnesses.length === b.witnesses.length &&
    a.witnesses.every((w, i) => w.name === b.witnesses[i]!.name && bytesEqual(w.key, b.witnesses[i]!.key))
  );
}

/** Compare a statement the host handed over with the one the sealed entry implies, naming what differs. */
export function checkStatement(expected: GenesisStatement, given: Uint8Array): void {
  const want = encodeStatement(expected);
  if (bytesEqual(want, given)) return;
  let s: GenesisStatement | null = null;
  try {
    s = decodeStatement(given);
  } catch {
    throw new BkvError(ErrorCode.Malformed, "the genesis statement does not decode");
  }
  if (
    s.policy.guessLimit !== expected.policy.guessLimit ||
    s.policy.n !== expected.policy.n ||
    s.policy.quorum !== expected.policy.quorum ||
    s.maxSuccessorGuessLimit !== expected.maxSuccessorGuessLimit
  ) {
    throw new BkvError(ErrorCode.Policy, "the statement's policy differs from the sealed genesis entry");
  }
  if (!bytesEqual(s.measurement, expected.measurement)) {
    throw new BkvError(
      ErrorCode.Measurement,
      "the statement's measurement differs from the sealed genesis entry",
    );
  }
  const where: string[] = [];
  if (s.namespace !== expected.namespace) where.push("namespace");
  if (s.epoch !== expected.epoch) where.push("epoch");
  if (!bytesEqual(s.logKey, expected.logKey)) where.push("log key");
  if (!bytesEqual(s.releaseKey, expected.releaseKey)) where.push("release key");
  if (!sameWitnessPolicy(s.witnessPolicy, expected.witnessPolicy)) where.push("witness policy");
  if (where.length > 0) {
    throw new BkvError(
      ErrorCode.Invalid,
      `the statement's ${where.join(", ")} differ from the sealed genesis entry`,
    );
  }
  throw new BkvError(ErrorCode.Invalid, "the genesis statement differs from the sealed genesis entry");
}

const MAGIC = utf8("BKVG");
const VERSION = 2;

export interface GenesisPackage {
  fleetId: Uint8Array;
  creator: number;
  member: number;
  members: Uint8Array[];
  /** The member's challenge this package answers (also in the sealed entry, and authenticated). */
  challenge: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

export function packageKey(
  crypto: HsmCrypto,
  shared: Uint8Array,
  fleetId: Uint8Array,
  creator: number,
  member: number,
): Uint8Array {
  return crypto.hkdf(
    shared,
    fleetId,
    new Writer().fixed(utf8("bkv genesis v1")).u8(creator).u8(member).finish(),
    32,
  );
}

function header(p: Omit<GenesisPackage, "nonce" | "ciphertext">): Uint8Array {
  return new Writer()
    .fixed(MAGIC)
    .u8(VERSION)
    .fixed(p.fleetId)
    .u8(p.creator)
    .u8(p.member)
    .list(p.members, (w, m) => {
      w.bytes(m);
    })
    .fixed(p.challenge)
    .finish();
}

export function packageAad(p: Omit<GenesisPackage, "nonce" | "ciphertext">): Uint8Array {
  return header(p);
}

export function encodePackage(p: GenesisPackage): Uint8Array {
  return new Writer().fixed(header(p)).fixed(p.nonce).bytes(p.ciphertext).finish();
}

export function decodePackage(b: Uint8Array): GenesisPackage {
  const r = new Reader(b, "genesis package");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === MAGIC[i]) && r.u8("version") === VERSION,
    "genesis package: wrong magic or version",
  );
  const fleetId = r.fixed(16, "fleet id");
  const creator = r.u8("creator");
  const member = r.u8("member");
  const members = r.list("members", 9, (r) => r.bytes("member attestation", 4096));
  const challenge = r.fixed(GENESIS_CHALLENGE_LENGTH, "challenge");
  check(members.length >= 1 && creator >= 1 && creator <= members.length, "genesis package: bad creator");
  check(member >= 1 && member <= members.length, "genesis package: bad member");
  const nonce = r.fixed(12, "nonce");
  const ciphertext = r.bytes("ciphertext", 1 << 16);
  r.end();
  return { fleetId, creator, member, members, challenge, nonce, ciphertext };
}

/** Check an opened genesis entry against its package header. */
export function checkGenesisEntry(bytes: Uint8Array, p: GenesisPackage): RaftEntry {
  const e = decodeRaftEntry(bytes);
  const op = e.ops[0];
  check(
    e.index === 1 && e.term === 0 && e.ops.length === 1 && op?.op === "genesis",
    "genesis package: not a genesis entry",
  );
  check(bytesEqual(e.prevHash, new Uint8Array(32)), "genesis package: genesis must start the chain");
  const g = op.genesis;
  check(bytesEqual(g.fleetId, p.fleetId), "genesis package: fleet id differs from its header");
  check(
    g.members.length === p.members.length && g.members.every((m, i) => bytesEqual(m, p.members[i]!)),
    "genesis package: members differ from its header",
  );
  checkChallenges(g.challenges, g.members.length);
  if (!bytesEqual(g.challenges[p.member - 1]!, p.challenge)) {
    throw new BkvError(
      ErrorCode.GenesisChallenge,
      "genesis package: its challenge differs from the sealed entry's",
    );
  }
  return e;
}

/** Why an HSM whose NVRAM names a ceremony takes part in no genesis now. */
export function spentMessage(nv: NvramState): string {
  const c = nv.ceremony;
  const fleet = toHex(c.fleetId);
  if (c.role === "none") {
    return "this HSM's NVRAM holds state but names no genesis: it takes part in no genesis (provision a new HSM)";
  }
  return (
    `this HSM already took part in the genesis of fleet ${fleet} as its ${c.role}` +
    (nv.tip.index === 0 ? " and has not stored that fleet's genesis entry" : "") +
    ": an HSM takes part in one genesis in its life, so it is spent. Provision a new HSM (or wipe" +
    " its NVRAM, which gives it a new identity)"
  );
}
