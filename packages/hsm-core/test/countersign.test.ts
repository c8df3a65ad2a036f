/**
 * The fleet counter-signs validation bundles inside the HSM, and only what it should: an artifact
 * that describes its own fleet (namespace and epoch frozen at genesis included), whose validity
 * window is at most MAX_ARTIFACT_VALIDITY_MS, and that the log key frozen at genesis signed. A host
 * cannot get the fleet's signature on another fleet's keys, a raised guess limit, other members or
 * code, another namespace or epoch, an unbounded window, or a "log signature" nobody made.
 */

import { createHash } from "node:crypto";
import { ed25519PublicKeyOf, ed25519SignWith, ed25519VerifyWith } from "@bkv/hsm-software";
import { SimFleet } from "@bkv/sim";
import {
  artifactFromStatement,
  countersignMessage,
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  encodeArtifact,
  type FleetArtifact,
  type GenesisStatement,
  type HsmToHost,
  logBundleMessage,
  MAX_ARTIFACT_VALIDITY_MS,
} from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());
const NOT_BEFORE = 1_800_000_000_000;
const YEAR = 365 * 24 * 3600 * 1000;

let fleet: SimFleet;
let statement: GenesisStatement;
let artifact: FleetArtifact;

beforeAll(async () => {
  fleet = await SimFleet.create({ nodes: 3, seed: 11, namespace: "bkv-test", epoch: 7 });
  statement = decodeStatement(decodeEvidence(fleet.evidence).statement);
  artifact = artifactFromStatement(statement, { notBefore: NOT_BEFORE, notAfter: NOT_BEFORE + YEAR });
});

async function countersign(node: number, a: Uint8Array, logSignature: Uint8Array) {
  const n = fleet.node(node);
  const tag = 1000 + n.frames.length;
  await fleet.deliverFrame(n, { type: "countersign", tag, artifact: a, logSignature });
  const f = n.frames.find((x: HsmToHost) => x.type === "countersignature" && x.tag === tag);
  if (f?.type !== "countersignature") throw new Error("no answer");
  return f;
}

/** Ask node 1, expect a refusal by name whose message contains `reason`. */
async function refused(a: FleetArtifact | Uint8Array, logSignature: Uint8Array, reason: string) {
  const bytes = a instanceof Uint8Array ? a : encodeArtifact(a);
  const r = await countersign(1, bytes, logSignature);
  expect(r.ok, reason).toBe(false);
  if (r.ok) return;
  expect(r.code, r.message).toBe(ErrorCode.CountersignRefused);
  expect(r.message).toContain(reason);
}

describe("counter-signature", () => {
  it("genesis froze the namespace, the epoch and the log's key into the statement", () => {
    expect(statement.namespace).toBe("bkv-test");
    expect(statement.epoch).toBe(7);
    expect(statement.logKey).toEqual(fleet.logKey);
  });

  it("a genuine request: every member signs the v2 message with the fleet signing key", async () => {
    const bytes = encodeArtifact(artifact);
    const logSignature = fleet.logSign(bytes);
    const signingKey = statement.fleetSigningKey;
    const message = countersignMessage({
      namespace: "bkv-test",
      epoch: 7,
      artifactDigest: sha256(bytes),
      logSignature,
    });
    for (const node of [1, 2, 3]) {
      const r = await countersign(node, bytes, logSignature);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(ed25519VerifyWith(signingKey, message, r.signature)).toBe(true);
        // Not the v1 message (the log's signature alone): the counter-signature binds what it vouches for.
        expect(ed25519VerifyWith(signingKey, logSignature, r.signature)).toBe(false);
      }
    }
  });

  it("refuses 64 random bytes as the log's signature", async () => {
    const random = new Uint8Array(64);
    crypto.getRandomValues(random);
    random[63]! &= 0x0f; // S below the group order: a strict-looking signature nobody made
    await refused(artifact, random, "does not verify under the log key frozen at genesis");
  });

  it("refuses a log signature by another key, and one over another artifact", async () => {
    const bytes = encodeArtifact(artifact);
    const otherSeed = new Uint8Array(32).fill(3);
    expect(ed25519PublicKeyOf(otherSeed)).not.toEqual(fleet.logKey);
    const byOther = ed25519SignWith(otherSeed, logBundleMessage("bkv-test", 7, sha256(bytes)));
    await refused(artifact, byOther, "does not verify");
    const longer = { ...artifact, notAfter: artifact.notAfter + 1 };
    await refused(longer, fleet.logSign(bytes), "does not verify");
  });

  it("refuses another namespace, even with the log's genuine signature for it", async () => {
    const other = { ...artifact, namespace: "someone-else" };
    const bytes = encodeArtifact(other);
    await refused(other, fleet.logSign(bytes, "someone-else", 7), 'namespace "someone-else"');
  });

  it("refuses epoch 4,000,000,000 (and any epoch but the fleet's own)", async () => {
    for (const epoch of [4_000_000_000, 8, 6]) {
      const other = { ...artifact, epoch };
      const bytes = encodeArtifact(other);
      await refused(other, fleet.logSign(bytes, "bkv-test", epoch), `epoch ${epoch}`);
    }
  });

  it("refuses a validity window ending at 2^52, and one a millisecond over the limit", async () => {
    for (const notAfter of [2 ** 52, NOT_BEFORE + MAX_ARTIFACT_VALIDITY_MS + 1]) {
      const long = { ...artifact, notAfter };
      await refused(long, fleet.logSign(encodeArtifact(long)), "validity window");
    }
    // Exactly the limit is allowed.
    const edge = { ...artifact, notAfter: NOT_BEFORE + MAX_ARTIFACT_VALIDITY_MS };
    const bytes = encodeArtifact(edge);
    expect((await countersign(1, bytes, fleet.logSign(bytes))).ok).toBe(true);
  });

  it("refuses an artifact that does not describe the fleet", async () => {
    const variants: [string, FleetArtifact][] = [
      ["policy", { ...artifact, policy: { ...artifact.policy, guessLimit: 1000 } }],
      [
        "vault key",
        { ...artifact, keys: [{ role: "vault-hpke", key: new Uint8Array(32) }, artifact.keys[1]!] },
      ],
      ["members", { ...artifact, members: artifact.members.slice(0, 1), policy: { ...artifact.policy } }],
      ["measurement", { ...artifact, measurement: new Uint8Array(32).fill(1) }],
      ["fleet id", { ...artifact, fleetId: new Uint8Array(16) }],
    ];
    for (const [what, a] of variants) {
      // Even with the log's genuine signature over it: the log does not speak for the fleet.
      await refused(a, fleet.logSign(encodeArtifact(a)), what);
    }
    await refused(new Uint8Array([1, 2, 3]), fleet.logSign(new Uint8Array([1, 2, 3])), "does not decode");
    // The member goes on serving after refusals.
    const bytes = encodeArtifact(artifact);
    expect((await countersign(1, bytes, fleet.logSign(bytes))).ok).toBe(true);
  });
});
