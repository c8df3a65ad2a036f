/**
 * The fleet counter-signs validation bundles inside the HSM, and only for an artifact that
 * describes its own fleet: a host cannot get the fleet's signature on another fleet's keys, a raised
 * guess limit, other members or other code.
 */

import { ed25519VerifyWith } from "@bkv/hsm-software";
import { SimFleet } from "@bkv/sim";
import {
  artifactFromStatement,
  countersignMessage,
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  encodeArtifact,
  type FleetArtifact,
  type HsmToHost,
} from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";

let fleet: SimFleet;
let artifact: FleetArtifact;

beforeAll(async () => {
  fleet = await SimFleet.create({ nodes: 3, seed: 11 });
  const st = decodeStatement(decodeEvidence(fleet.evidence).statement);
  artifact = artifactFromStatement(st, { namespace: "test", epoch: 1, notBefore: 0, notAfter: 1e13 });
});

async function countersign(node: number, a: Uint8Array, logSignature: Uint8Array) {
  const n = fleet.node(node);
  const tag = 1000 + n.frames.length;
  await fleet.deliverFrame(n, { type: "countersign", tag, artifact: a, logSignature });
  const f = n.frames.find((x: HsmToHost) => x.type === "countersignature" && x.tag === tag);
  if (f?.type !== "countersignature") throw new Error("no answer");
  return f;
}

describe("counter-signature", () => {
  it("any member signs the log's signature for its own fleet's artifact, with the fleet signing key", async () => {
    const logSignature = new Uint8Array(64).fill(9);
    const signingKey = artifact.keys.find((k) => k.role === "fleet-signing")!.key;
    for (const node of [1, 2, 3]) {
      const r = await countersign(node, encodeArtifact(artifact), logSignature);
      expect(r.ok).toBe(true);
      if (r.ok)
        expect(ed25519VerifyWith(signingKey, countersignMessage(logSignature), r.signature)).toBe(true);
    }
  });

  it("refuses an artifact that does not describe the fleet", async () => {
    const sig = new Uint8Array(64).fill(1);
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
      const r = await countersign(1, encodeArtifact(a), sig);
      expect(r.ok, what).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(ErrorCode.Invalid);
        expect(r.message).toContain(what);
      }
    }
    const bad = await countersign(1, new Uint8Array([1, 2, 3]), sig);
    expect(bad.ok === false && bad.code).toBe(ErrorCode.Malformed);
    // The member goes on serving after refusals.
    expect((await countersign(1, encodeArtifact(artifact), sig)).ok).toBe(true);
  });
});
