/**
 * Test data for validation bundles: a log, two witnesses and a fleet artifact made with the real
 * formats (C2SP notes, RFC 9162 proofs, Ed25519), where the test holds every key.
 */
import { randomBytes } from "node:crypto";
import type { TrustPins } from "@bkv/client";
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
  SIG_COSIGNATURE_V1,
  signNote,
  toBase64,
} from "@bkv/tlog";
import { type BundleJson, countersignMessage, encodeArtifact, type FleetArtifact } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";

export const NOW = Date.UTC(2026, 10, 28);
const ORIGIN = "example.test/log";

/** A log, two witnesses and a fleet; every key in the test's hands. */
export function world() {
  const log = generateSignerKey(ORIGIN);
  const w1 = generateSignerKey("example.test/w1", SIG_COSIGNATURE_V1);
  const w2 = generateSignerKey("example.test/w2", SIG_COSIGNATURE_V1);
  const pins: TrustPins = {
    logKey: log.vkey,
    witnessKeys: [w1.vkey, w2.vkey],
    witnessThreshold: 2,
    namespace: "example.test/vault",
  };
  const fleetSeed = new Uint8Array(randomBytes(32));
  const logSeed = parseSignerKey(log.skey).seed;
  const tree = new MerkleTree();
  const entries: { namespace: string; epoch: number; artifact: Uint8Array; evidenceDigest: Uint8Array }[] =
    [];

  const artifactOf = (o: Partial<FleetArtifact> = {}): Uint8Array =>
    encodeArtifact({
      namespace: pins.namespace,
      epoch: 1,
      fleetId: new Uint8Array(16).fill(3),
      keys: [
        { role: "vault-hpke", key: new Uint8Array(32).fill(4) },
        { role: "fleet-signing", key: ed25519.getPublicKey(fleetSeed) },
      ],
      members: [],
      measurement: new Uint8Array(32).fill(5),
      policy: { guessLimit: 10, n: 1, quorum: 1 },
      notBefore: NOW - 1000,
      notAfter: NOW + 86_400_000,
      ...o,
    });

  const append = (artifact: Uint8Array, namespace = pins.namespace, epoch = 1) => {
    const e = { namespace, epoch, artifact, evidenceDigest: new Uint8Array(32).fill(7) };
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

  /** A bundle for entry `index` against a checkpoint of `size` (both default to the latest). */
  const bundle = async (index: number, size = tree.size): Promise<BundleJson> => {
    const e = entries[index]!;
    const logSignature = logSign(e.artifact, e.namespace, e.epoch);
    return {
      namespace: e.namespace,
      epoch: e.epoch,
      artifact: toBase64(e.artifact),
      evidenceDigest: toBase64(e.evidenceDigest),
      index,
      logSignature: toBase64(logSignature),
      countersignature: toBase64(ed25519.sign(countersignMessage(logSignature), fleetSeed)),
      inclusionProof: tree.inclusionProof(index, size).map(toBase64),
      checkpoint: await checkpoint(size),
    };
  };
  return { pins, fleetSeed, tree, artifactOf, append, checkpoint, logSign, bundle, w1, w2 };
}
