/**
 * The genesis ceremony (`bkv fleet create`, run by `bkv dev` for a new folder), driven by the
 * operator's tooling, which the HSMs do not trust:
 *   1. start every member's HSM on empty storage and collect its attestation and its challenge
 *      (fresh random bytes it made at this boot, memory only);
 *   2. HSM 1 checks every attestation, records "creator of fleet X" in its NVRAM, creates the fleet
 *      secrets, seals them to each member with its challenge and drafts the genesis statement,
 *      which names every member's challenge;
 *   3. each member opens its package, checks it answers its current challenge, every attestation,
 *      the measurement, the policy and that the statement is exactly what its sealed entry implies,
 *      records "joiner of fleet X" in its NVRAM and signs the statement;
 *   4. each member receives all signatures, checks them, and only then stores the genesis entry.
 * The operator names where the fleet is published: the namespace, the fleet's epoch in it and the
 * transparency log's raw Ed25519 key. Genesis freezes them: the fleet counter-signs only bundles of
 * that namespace and epoch that this log signed.
 * The result is the fleet's evidence: the statement and every member's signature over it. The
 * ceremony log (the digest of every message passed, in order) is the operator's own record, unsigned
 * by any HSM and no part of the evidence. Afterwards no key exists that could add a member, change
 * the policy or change the code. Every HSM takes part in one genesis in its life: one that refused, or
 * was restarted, part way is spent (a new HSM, or wiped NVRAM, which means a new identity).
 */

import { createHash } from "node:crypto";
import {
  BkvError,
  decodeStatement,
  ErrorCode,
  encodeEvidence,
  encodeHostToHsm,
  type FleetEvidence,
  type HostToHsm,
  toHex,
  type WitnessPolicy,
} from "@bkv/wire";
import { HsmProcess } from "./hsm-process.js";
import { HostStorage } from "./storage.js";

export interface CeremonyMember {
  node: number;
  /** argv that starts this member's HSM process. */
  hsmCommand: string[];
  /** This member's host storage (SQLite). */
  storagePath: string;
}

export interface FleetCreated {
  fleetId: string;
  /** Where the fleet is published, frozen at genesis (logKey: the log's raw Ed25519 key, hex). */
  namespace: string;
  epoch: number;
  logKey: string;
  /** What the fleet accepts of a successor, frozen at genesis (releaseKey: raw Ed25519, hex). */
  releaseKey: string;
  maxSuccessorGuessLimit: number;
  /**
   * The log's witness policy, frozen at genesis: each witness's name and raw Ed25519
   * cosignature/v1 key (hex), and how many must cosign a checkpoint.
   */
  witnesses: { name: string; key: string }[];
  witnessThreshold: number;
  vaultPublicKey: string;
  fleetSigningKey: string;
  measurement: string;
  guessesAllowed: number;
  createdAt: number;
  members: { node: number; signKey: string; agreeKey: string; platform: string }[];
}

/** One message the ceremony passed: which, to or from which node, and its SHA-256 (hex). */
export interface CeremonyLogStep {
  step: string;
  node: number;
  digest: string;
}

export interface CeremonyResult {
  fleet: FleetCreated;
  /** The encoded FleetEvidence (canonical bytes): the statement and every member's signature. */
  evidence: Uint8Array;
  /** The operator's own record of the ceremony (not evidence: no HSM signed it). */
  ceremonyLog: CeremonyLogStep[];
}

/** What the operator brings to genesis besides the members. */
export interface FleetParameters {
  guessLimit: number;
  /** The deployment's namespace in the transparency log. */
  namespace: string;
  /** The fleet's epoch in that namespace. */
  epoch: number;
  /** The transparency log's raw Ed25519 key (32 bytes), the key of its bundle signatures. */
  logKey: Uint8Array;
  /** The release key (raw Ed25519, 32 bytes) accepted code is published under in the log. */
  releaseKey: Uint8Array;
  /** The highest guess limit a successor fleet may have: 1 to guessLimit (default guessLimit). */
  maxSuccessorGuessLimit?: number;
  /** The log's witnesses (names, raw 32-byte cosignature/v1 keys) and how many must cosign. */
  witnessPolicy: WitnessPolicy;
}

const digest = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/**
 * One member of the ceremony as the operator's tooling reaches it: a local HSM process
 * (`createFleet`) or a host's admin listener over the network (`bkv fleet create --hosts`). Both
 * pass the same frames; the HSMs check everything.
 */
export interface GenesisMember {
  node: number;
  /** The HSM's attestation and the challenge it made at this boot (it must be uninitialized). */
  identity(): Promise<{ attestation: Uint8Array; challenge: Uint8Array }>;
  create(
    m: HostToHsm & { type: "genesis-create" },
  ): Promise<{ statement: Uint8Array; packages: Uint8Array[] }>;
  join(pkg: Uint8Array, statement: Uint8Array): Promise<Uint8Array>;
  /** Hand over every signature; resolves with the node number the HSM booted as. */
  finish(signatures: Uint8Array[]): Promise<number>;
}

/** Run the ceremony over members (in node order; the first creates). */
export async function runCeremony(
  members: GenesisMember[],
  params: FleetParameters,
): Promise<CeremonyResult> {
  const ceremonyLog: CeremonyLogStep[] = [];
  const record = (step: string, node: number, bytes: Uint8Array) =>
    ceremonyLog.push({ step, node, digest: toHex(digest(bytes)) });
  const attestations: Uint8Array[] = [];
  const challenges: Uint8Array[] = [];
  for (const m of members) {
    const b = await m.identity();
    attestations.push(b.attestation);
    challenges.push(b.challenge);
    record("attestation", m.node, b.attestation);
    record("challenge", m.node, b.challenge);
  }
  const create: HostToHsm & { type: "genesis-create" } = {
    type: "genesis-create",
    members: attestations,
    challenges,
    guessLimit: params.guessLimit,
    namespace: params.namespace,
    epoch: params.epoch,
    logKey: params.logKey,
    releaseKey: params.releaseKey,
    maxSuccessorGuessLimit: params.maxSuccessorGuessLimit ?? params.guessLimit,
    witnessPolicy: params.witnessPolicy,
  };
  record("genesis-create", members[0]!.node, encodeHostToHsm(create));
  const { statement, packages } = await members[0]!.create(create);
  if (packages.length !== members.length)
    throw new BkvError(
      ErrorCode.Malformed,
      `the creator sent ${packages.length} packages for ${members.length} members`,
    );
  record("statement", members[0]!.node, statement);
  const signatures: Uint8Array[] = [];
  for (const [i, m] of members.entries()) {
    record("package", m.node, packages[i]!);
    const signature = await m.join(packages[i]!, statement);
    record("signature", m.node, signature);
    signatures.push(signature);
  }
  const s = decodeStatement(statement);
  for (const m of members) {
    const node = await m.finish(signatures);
    if (node !== m.node) throw new Error(`HSM of node ${m.node} joined as node ${node}`);
    record("joined", m.node, s.fleetId);
  }
  const evidence: FleetEvidence = { statement, signatures };
  return {
    fleet: {
      fleetId: toHex(s.fleetId),
      namespace: s.namespace,
      epoch: s.epoch,
      logKey: toHex(s.logKey),
      releaseKey: toHex(s.releaseKey),
      maxSuccessorGuessLimit: s.maxSuccessorGuessLimit,
      witnesses: s.witnessPolicy.witnesses.map((w) => ({ name: w.name, key: toHex(w.key) })),
      witnessThreshold: s.witnessPolicy.threshold,
      vaultPublicKey: toHex(s.vaultPublicKey),
      fleetSigningKey: toHex(s.fleetSigningKey),
      measurement: toHex(s.measurement),
      guessesAllowed: s.policy.guessLimit,
      createdAt: s.time,
      members: s.members.map((m, k) => ({
        node: members[k]!.node,
        signKey: toHex(m.signKey),
        agreeKey: toHex(m.agreeKey),
        platform: m.platform,
      })),
    },
    evidence: encodeEvidence(evidence),
    ceremonyLog,
  };
}

/** The ceremony over local HSM processes (development, `bkv fleet create --dir`, tests). */
export async function createFleet(
  members: CeremonyMember[],
  params: FleetParameters,
): Promise<CeremonyResult> {
  const storages = members.map((m) => new HostStorage(m.storagePath));
  const hsms: HsmProcess[] = [];
  try {
    for (const [i, s] of storages.entries()) {
      const stored = s.load();
      if (stored.snapshot !== null || stored.entries.length > 0) {
        throw new Error(`node ${members[i]!.node} already has host storage: its fleet exists`);
      }
    }
    const local: GenesisMember[] = members.map((m, i) => {
      let h: HsmProcess;
      return {
        node: m.node,
        async identity() {
          h = new HsmProcess(m.hsmCommand);
          hsms.push(h);
          h.send({ type: "boot", snapshot: null, entries: [] });
          const b = await h.next("booted");
          if (b.node !== 0) throw new Error(`node ${m.node}'s HSM already belongs to a fleet`);
          return { attestation: b.identity, challenge: b.challenge };
        },
        async create(c) {
          h.send(c);
          const r = await h.next("genesis-packages");
          return { statement: r.statement, packages: r.packages };
        },
        async join(pkg, statement) {
          h.send({ type: "genesis-join", package: pkg, statement });
          return (await h.next("genesis-signature")).signature;
        },
        async finish(signatures) {
          h.send({ type: "genesis-finish", signatures });
          const p = await h.next("persist");
          storages[i]!.persist(p.entries, p.snapshot, p.truncateFrom);
          h.send({ type: "persisted", id: p.id });
          return (await h.next("booted")).node;
        },
      };
    });
    return await runCeremony(local, params);
  } finally {
    await Promise.all(hsms.map((h) => h.stop()));
    for (const s of storages) s.close();
  }
}
