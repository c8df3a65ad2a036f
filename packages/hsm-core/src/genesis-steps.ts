/**
 * The HSM's cryptographic part of the genesis ceremony (the checks are in genesis.ts; the core
 * keeps the bookkeeping: phase, NVRAM, the one-genesis rule): the creator makes the genesis entry
 * with the fleet's secrets and seals it to each member, with that member's challenge in the
 * package; a member opens its own package and checks that it describes a fleet it may join (its
 * members' keys strict, its code, its policy, where it is published, what it accepts of a
 * successor, the witnesses it checks a successor's log entries under) and that the statement it is
 * asked to sign is exactly the one the entry implies.
 */
import {
  type Attestation,
  BkvError,
  bytesEqual,
  ErrorCode,
  encodeStatement,
  type WitnessPolicy,
} from "@bkv/wire";
import {
  checkGenesisEntry,
  checkMembers,
  checkPublication,
  checkStatement,
  checkSuccessorTerms,
  encodePackage,
  type GenesisPackage,
  packageAad,
  packageKey,
  statementOf,
  validateGuessLimit,
  vendorDocumentCheck,
} from "./genesis.js";
import { opaqueSetupFromSeed } from "./opaque-setup.js";
import type { HsmPlatform } from "./platform.js";
import { encodeRaftEntry, type Genesis, type RaftEntry } from "./raft-entry.js";

const ZERO_HASH = new Uint8Array(32);

export interface NewFleet {
  members: Uint8Array[];
  challenges: Uint8Array[];
  /** The members' attestations, already checked (checkMembers). */
  attestations: Attestation[];
  /** This HSM's member number. */
  creator: number;
  guessLimit: number;
  /** Where the fleet is published (already checked: checkPublication). */
  namespace: string;
  epoch: number;
  logKey: Uint8Array;
  /** What the fleet accepts of a successor (already checked: checkSuccessorTerms). */
  releaseKey: Uint8Array;
  maxSuccessorGuessLimit: number;
  witnessPolicy: WitnessPolicy;
  fleetId: Uint8Array;
  fleetSigningSeed: Uint8Array;
  hpke: { privateKey: Uint8Array; publicKey: Uint8Array };
  now: number;
}

/** The genesis statement to sign, and one sealed package per member (member i gets packages[i - 1]). */
export async function sealFleet(
  platform: HsmPlatform,
  f: NewFleet,
): Promise<{ statement: Uint8Array; packages: Uint8Array[] }> {
  const crypto = platform.crypto;
  const genesis: Genesis = {
    fleetId: f.fleetId,
    namespace: f.namespace,
    epoch: f.epoch,
    logKey: f.logKey,
    releaseKey: f.releaseKey,
    maxSuccessorGuessLimit: f.maxSuccessorGuessLimit,
    witnessPolicy: f.witnessPolicy,
    members: f.members,
    challenges: f.challenges,
    measurement: platform.measurement(),
    opaqueServerSetup: opaqueSetupFromSeed(crypto, f.fleetSigningSeed),
    hpkePrivateKey: f.hpke.privateKey,
    hpkePublicKey: f.hpke.publicKey,
    fleetSigningSeed: f.fleetSigningSeed,
    fleetSigningKey: crypto.ed25519PublicKey(f.fleetSigningSeed),
    guessLimit: f.guessLimit,
    createdAt: f.now,
  };
  const entry = encodeRaftEntry({
    index: 1,
    term: 0,
    prevHash: ZERO_HASH,
    time: f.now,
    requestId: new Uint8Array(0),
    ops: [{ op: "genesis", genesis }],
  });
  const packages: Uint8Array[] = [];
  for (let member = 1; member <= f.members.length; member++) {
    const head = {
      fleetId: f.fleetId,
      creator: f.creator,
      member,
      members: f.members,
      challenge: f.challenges[member - 1]!,
    };
    const shared = await platform.identityAgree(f.attestations[member - 1]!.agreeKey);
    const key = packageKey(crypto, shared, f.fleetId, f.creator, member);
    const nonce = platform.randomBytes(12);
    const ciphertext = await crypto.aeadSeal(key, nonce, entry, packageAad(head));
    packages.push(encodePackage({ ...head, nonce, ciphertext }));
  }
  return { statement: encodeStatement(statementOf(genesis)), packages };
}

export interface OpenedPackage {
  entry: RaftEntry;
  bytes: Uint8Array;
  genesis: Genesis;
}

/**
 * Open this HSM's package (signKey: its identity signing key) and check it against the statement.
 * created: this HSM created the fleet, so the package must be its own. Throws a BkvError naming
 * what is wrong.
 */
export async function openPackage(
  platform: HsmPlatform,
  signKey: Uint8Array,
  p: GenesisPackage,
  statement: Uint8Array,
  created: boolean,
): Promise<OpenedPackage> {
  const crypto = platform.crypto;
  const members = checkMembers(
    crypto,
    platform.vendorRoots(),
    platform.measurement(),
    p.members,
    vendorDocumentCheck(platform),
  );
  if (!bytesEqual(members[p.member - 1]!.signKey, signKey))
    throw new BkvError(ErrorCode.Invalid, "the package is for another HSM");
  if (created && !bytesEqual(members[p.creator - 1]!.signKey, signKey))
    throw new BkvError(ErrorCode.Invalid, "this HSM created the fleet: its package must be its own");
  const shared = await platform.identityAgree(members[p.creator - 1]!.agreeKey);
  const key = packageKey(crypto, shared, p.fleetId, p.creator, p.member);
  let bytes: Uint8Array;
  try {
    bytes = await crypto.aeadOpen(key, p.nonce, p.ciphertext, packageAad(p));
  } catch {
    throw new BkvError(ErrorCode.Authentication, "the package does not open with this HSM's key");
  }
  const entry = checkGenesisEntry(bytes, p);
  const op = entry.ops[0]!;
  if (op.op !== "genesis") throw new BkvError(ErrorCode.Invalid, "not a genesis entry");
  const genesis = op.genesis;
  validateGuessLimit(genesis.guessLimit);
  checkPublication(genesis.namespace, genesis.epoch, genesis.logKey);
  checkSuccessorTerms(
    genesis.releaseKey,
    genesis.maxSuccessorGuessLimit,
    genesis.guessLimit,
    genesis.witnessPolicy,
    genesis.logKey,
  );
  if (!bytesEqual(genesis.measurement, platform.measurement())) {
    throw new BkvError(ErrorCode.Measurement, "the fleet's measurement differs from this HSM's code");
  }
  checkStatement(statementOf(genesis), statement);
  return { entry, bytes, genesis };
}
