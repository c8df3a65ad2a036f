/**
 * Test data for validation bundles: a vendor root, HSM members with attestations, fleets with their
 * genesis statement and evidence, a log, two witnesses, made with the real formats (C2SP notes,
 * RFC 9162 proofs, Ed25519, P-256) and noble keys, where the test holds every key. No HSM code:
 * the world is what an operator with every key could make, so the client's checks are tested on
 * their own.
 */
import { randomBytes } from "node:crypto";
import type { PinnedVendorRoot, TrustPins } from "@bkv/client";
import {
  artifactDigest,
  bundleSignedMessage,
  cosignatureSigner,
  ed25519NoteSigner,
  formatCheckpoint,
  generateSignerKey,
  logEntryLeafHash,
  MerkleTree,
  parseSignerKey,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  signNote,
  toBase64,
} from "@bkv/tlog";
import {
  type Attestation,
  artifactFromStatement,
  attestationSignedBytes,
  type BundleJson,
  countersignMessage,
  encodeArtifact,
  encodeEvidence,
  encodeStatement,
  type FleetArtifact,
  type GenesisStatement,
  quorumOf,
  toHex,
  type WitnessPolicy,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const NOW = Date.UTC(2026, 10, 28);
const ORIGIN = "example.test/log";
export const MEASUREMENT = new Uint8Array(32).fill(5);

const seed = () => new Uint8Array(randomBytes(32));

/** A vendor root whose private key the test holds. */
export function vendorRoot(name = "example vendor", test = false) {
  const s = seed();
  const publicKey = ed25519.getPublicKey(s);
  const pin: PinnedVendorRoot = { name, key: toHex(publicKey), test };
  return { seed: s, publicKey, pin };
}
export type VendorRoot = ReturnType<typeof vendorRoot>;

/** An HSM: its Ed25519 sign key and P-256 agree key, attested by `root` for `measurement`. */
export function member(root: VendorRoot, measurement: Uint8Array = MEASUREMENT, platform = "software") {
  const signSeed = seed();
  const agreeSecret = p256.utils.randomSecretKey();
  const body = {
    platform,
    vendor: "bkv test vendor (tests)",
    signKey: ed25519.getPublicKey(signSeed),
    agreeKey: p256.getPublicKey(agreeSecret, false),
    measurement,
    properties: ["non-extractable"],
  };
  const attestation: Attestation = {
    ...body,
    signature: ed25519.sign(attestationSignedBytes(body), root.seed),
  };
  return { signSeed, attestation };
}
export type Member = ReturnType<typeof member>;

/** Re-sign an attestation body (after a test changed it) with a root. */
export function reattest(a: Attestation, root: VendorRoot): Attestation {
  return { ...a, signature: ed25519.sign(attestationSignedBytes(a), root.seed) };
}

export interface FleetOptions {
  n?: number;
  epoch?: number;
  namespace?: string;
  guessLimit?: number;
  measurement?: Uint8Array;
  root?: VendorRoot;
  members?: Member[];
  /** The log key the fleet freezes (default: the world's log). */
  logKey?: Uint8Array;
  /** The release key the fleet freezes for its successors' code (default: the world's). */
  releaseKey?: Uint8Array;
  /** The witness policy the fleet freezes (default: the pinned witnesses and threshold). */
  witnessPolicy?: WitnessPolicy;
  vaultKey?: Uint8Array;
  notBefore?: number;
  notAfter?: number;
  /** Change the statement before the members sign it. */
  edit?: (st: GenesisStatement) => GenesisStatement;
}

/** A log, two witnesses, a vendor root, and fleets made on demand; every key in the test's hands. */
export function world() {
  const log = generateSignerKey(ORIGIN);
  const w1 = generateSignerKey("example.test/w1", SIG_COSIGNATURE_V1);
  const w2 = generateSignerKey("example.test/w2", SIG_COSIGNATURE_V1);
  const root = vendorRoot();
  const logRaw = parseVerifierKey(log.vkey).publicKey;
  /** The deployment's release key: fleets freeze it at genesis; release pins name it. */
  const releaseSeed = seed();
  const release = { seed: releaseSeed, publicKey: ed25519.getPublicKey(releaseSeed) };
  const pins: TrustPins = {
    logKey: log.vkey,
    witnessKeys: [w1.vkey, w2.vkey],
    witnessThreshold: 2,
    namespace: "example.test/vault",
    vendorRoots: [root.pin],
    measurements: [toHex(MEASUREMENT)],
    maxGuessLimit: 10,
  };
  /** The witness policy fleets freeze unless a test says otherwise: the pinned witnesses, 2 of 2. */
  const pinnedWitnesses: WitnessPolicy = {
    witnesses: [w1, w2].map((w) => {
      const v = parseVerifierKey(w.vkey);
      return { name: v.name, key: v.publicKey };
    }),
    threshold: 2,
  };
  const logSeed = parseSignerKey(log.skey).seed;
  const tree = new MerkleTree();
  interface Entry {
    namespace: string;
    epoch: number;
    artifact: Uint8Array;
    evidenceDigest: Uint8Array;
    evidence: Uint8Array | undefined;
    fleetSeed: Uint8Array;
  }
  const entries: Entry[] = [];

  /** A fleet of `n` members (default 3) that made its genesis under `root` and signed its statement. */
  const fleet = (o: FleetOptions = {}) => {
    const n = o.members?.length ?? o.n ?? 3;
    const measurement = o.measurement ?? MEASUREMENT;
    const members = o.members ?? Array.from({ length: n }, () => member(o.root ?? root, measurement));
    const fleetSeed = seed();
    let st: GenesisStatement = {
      fleetId: new Uint8Array(randomBytes(16)),
      namespace: o.namespace ?? pins.namespace,
      epoch: o.epoch ?? 1,
      logKey: o.logKey ?? logRaw,
      releaseKey: o.releaseKey ?? release.publicKey,
      members: members.map((m) => m.attestation),
      challenges: members.map(() => seed()),
      measurement,
      policy: { guessLimit: o.guessLimit ?? 10, n, quorum: quorumOf(n) },
      maxSuccessorGuessLimit: o.guessLimit ?? 10,
      witnessPolicy: o.witnessPolicy ?? pinnedWitnesses,
      vaultPublicKey: o.vaultKey ?? seed(),
      fleetSigningKey: ed25519.getPublicKey(fleetSeed),
      time: NOW - 60_000,
    };
    if (o.edit) st = o.edit(st);
    const statement = encodeStatement(st);
    const evidence = encodeEvidence({
      statement,
      signatures: members.map((m) => ed25519.sign(statement, m.signSeed)),
    });
    const artifact = artifactFromStatement(st, {
      notBefore: o.notBefore ?? NOW - 1000,
      notAfter: o.notAfter ?? NOW + 86_400_000,
    });
    return { st, statement, evidence, artifact, artifactBytes: encodeArtifact(artifact), fleetSeed, members };
  };
  type Fleet = ReturnType<typeof fleet>;

  /**
   * Append a fleet's artifact (or other bytes) to the log. By default the entry names the fleet's
   * evidence and its bundles carry it; `evidence` replaces what bundles carry, `evidenceDigest` what
   * the entry names.
   */
  const append = (
    f: Fleet,
    o: {
      artifact?: FleetArtifact | Uint8Array;
      namespace?: string;
      epoch?: number;
      evidence?: Uint8Array | null;
      evidenceDigest?: Uint8Array;
      fleetSeed?: Uint8Array;
    } = {},
  ) => {
    const artifact =
      o.artifact === undefined
        ? f.artifactBytes
        : o.artifact instanceof Uint8Array
          ? o.artifact
          : encodeArtifact(o.artifact);
    const evidence = o.evidence === null ? undefined : (o.evidence ?? f.evidence);
    const e: Entry = {
      namespace: o.namespace ?? f.st.namespace,
      epoch: o.epoch ?? f.st.epoch,
      artifact,
      evidenceDigest: o.evidenceDigest ?? sha256(evidence ?? f.evidence),
      evidence,
      fleetSeed: o.fleetSeed ?? f.fleetSeed,
    };
    entries.push(e);
    return tree.append(logEntryLeafHash(e));
  };

  const checkpoint = async (size = tree.size, witnesses = [w1, w2], root = tree.root(size)) =>
    signNote(formatCheckpoint({ origin: ORIGIN, size, root, extensions: [] }), [
      ed25519NoteSigner(log.skey),
      ...witnesses.map((w) => cosignatureSigner(w.skey, () => 1_700_000_000)),
    ]);

  const logSign = (artifact: Uint8Array, namespace = pins.namespace, epoch = 1) =>
    ed25519.sign(bundleSignedMessage(namespace, epoch, artifactDigest(artifact)), logSeed);

  const countersign = (
    artifact: Uint8Array,
    logSignature: Uint8Array,
    fleetSeed: Uint8Array,
    namespace = pins.namespace,
    epoch = 1,
  ) =>
    ed25519.sign(
      countersignMessage({ namespace, epoch, artifactDigest: artifactDigest(artifact), logSignature }),
      fleetSeed,
    );

  /** A bundle for entry `index` against a checkpoint of `size` (both default to the latest), with its evidence. */
  const bundle = async (index: number, size = tree.size, withEvidence = true): Promise<BundleJson> => {
    const e = entries[index]!;
    const logSignature = logSign(e.artifact, e.namespace, e.epoch);
    return {
      namespace: e.namespace,
      epoch: e.epoch,
      artifact: toBase64(e.artifact),
      evidenceDigest: toBase64(e.evidenceDigest),
      index,
      logSignature: toBase64(logSignature),
      countersignature: toBase64(countersign(e.artifact, logSignature, e.fleetSeed, e.namespace, e.epoch)),
      ...(withEvidence && e.evidence !== undefined ? { evidence: toBase64(e.evidence) } : {}),
      inclusionProof: tree.inclusionProof(index, size).map(toBase64),
      checkpoint: await checkpoint(size),
    };
  };
  return {
    pins,
    root,
    logRaw,
    release,
    tree,
    fleet,
    append,
    checkpoint,
    logSign,
    countersign,
    bundle,
    w1,
    w2,
  };
}
export type World = ReturnType<typeof world>;
