/**
 * Fleets for the log's tests, made with the real wire encoders and noble keys, where the test holds
 * every key: a vendor root, three HSM members attested by it, genesis statements and evidence for
 * any (namespace, epoch) that freeze the log's key, the matching artifacts, and a submitter key
 * that signs /add calls.
 */
import { randomBytes } from "node:crypto";
import { artifactDigest, evidenceDigest, submitMessage } from "@bkv/tlog";
import {
  type Attestation,
  artifactFromStatement,
  attestationSignedBytes,
  encodeArtifact,
  encodeEvidence,
  encodeStatement,
  type FleetArtifact,
  type GenesisStatement,
  quorumOf,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";

export const NOW = Date.UTC(2026, 10, 28);
const seed = () => new Uint8Array(randomBytes(32));

export interface Submission {
  namespace: string;
  epoch: number;
  artifact: Uint8Array;
  evidence: Uint8Array;
  statement: GenesisStatement;
}

export function fleetWorld(
  logKey: Uint8Array,
  o: {
    members?: number;
    guessLimit?: number;
    /**
     * Each fleet gets new members (as honest HSMs: one genesis each), unless the call names its
     * members. Without it every fleet has the same three members, which the log refuses from the
     * second fleet on (one HSM in two geneses).
     */
    freshMembers?: boolean;
  } = {},
) {
  const vendorSeed = seed();
  const vendorRoot = ed25519.getPublicKey(vendorSeed);
  const submitterSeed = seed();
  const submitterKey = ed25519.getPublicKey(submitterSeed);
  const measurement = new Uint8Array(randomBytes(32));
  const n = o.members ?? 3;

  const memberOf = (vendor: Uint8Array, m = measurement) => {
    const signSeed = seed();
    const body = {
      platform: "software",
      vendor: "test vendor (log tests)",
      signKey: ed25519.getPublicKey(signSeed),
      agreeKey: p256.getPublicKey(p256.utils.randomSecretKey(), false),
      measurement: m,
      properties: ["test"],
    };
    const attestation: Attestation = {
      ...body,
      signature: ed25519.sign(attestationSignedBytes(body), vendor),
    };
    return { signSeed, attestation };
  };
  const newMembers = () => Array.from({ length: n }, () => memberOf(vendorSeed));
  const members = newMembers();

  /** A statement for (namespace, epoch), every member's signature over it, and its artifact. */
  const fleet = (
    namespace: string,
    epoch: number,
    edit: {
      statement?: Partial<GenesisStatement>;
      artifact?: Partial<FleetArtifact>;
      members?: typeof members;
      /** Sign this statement instead of the one in the evidence (a signature over other bytes). */
      signOther?: boolean;
    } = {},
  ): Submission => {
    const ms = edit.members ?? (o.freshMembers === true ? newMembers() : members);
    const statement: GenesisStatement = {
      fleetId: new Uint8Array(randomBytes(16)),
      namespace,
      epoch,
      logKey,
      releaseKey: ed25519.getPublicKey(new Uint8Array(32).fill(0x52)),
      maxSuccessorGuessLimit: o.guessLimit ?? 10,
      witnessPolicy: {
        witnesses: [{ name: "bkv-test/witness", key: ed25519.getPublicKey(new Uint8Array(32).fill(0x57)) }],
        threshold: 1,
      },
      members: ms.map((m) => m.attestation),
      challenges: ms.map(() => new Uint8Array(randomBytes(32))),
      measurement,
      policy: { guessLimit: o.guessLimit ?? 10, n: ms.length, quorum: quorumOf(ms.length) },
      vaultPublicKey: new Uint8Array(randomBytes(32)),
      fleetSigningKey: ed25519.getPublicKey(seed()),
      time: NOW,
      ...edit.statement,
    };
    const bytes = encodeStatement(statement);
    const signed = edit.signOther ? encodeStatement({ ...statement, time: statement.time + 1 }) : bytes;
    const evidence = encodeEvidence({
      statement: bytes,
      signatures: ms.map((m) => ed25519.sign(signed, m.signSeed)),
    });
    const artifact = encodeArtifact({
      ...artifactFromStatement(statement, { notBefore: NOW - 60_000, notAfter: NOW + 365 * 86_400_000 }),
      ...edit.artifact,
    });
    return { namespace, epoch, artifact, evidence, statement };
  };

  /** The submitter's signature over a submission (another seed: a signature by another key). */
  const sign = (s: Omit<Submission, "statement">, by: Uint8Array = submitterSeed): Uint8Array =>
    ed25519.sign(
      submitMessage(s.namespace, s.epoch, artifactDigest(s.artifact), evidenceDigest(s.evidence)),
      by,
    );

  return {
    vendorSeed,
    vendorRoot,
    submitterSeed,
    submitterKey,
    measurement,
    members,
    memberOf,
    newMembers,
    fleet,
    sign,
  };
}

export type FleetWorld = ReturnType<typeof fleetWorld>;
