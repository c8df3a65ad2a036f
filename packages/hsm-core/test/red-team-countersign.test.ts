/**
 * Red team (operator): the fleet's counter-signature bounds the *length* of an artifact's validity
 * window (MAX_ARTIFACT_VALIDITY_MS) but not where the window lies. A host asks the fleet to
 * counter-sign windows that start decades after the HSM's own clock, back to back, and so holds
 * bundles the fleet vouches for long past its planned replacement: the three-year limit bounds
 * nothing. The HSM should refuse a window that starts after its own clock (plus a little slack) or
 * ends more than MAX_ARTIFACT_VALIDITY_MS after it.
 */
import { SimFleet } from "@bkv/sim";
import {
  artifactFromStatement,
  decodeEvidence,
  decodeStatement,
  encodeArtifact,
  type HsmToHost,
  MAX_ARTIFACT_VALIDITY_MS,
} from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";

const YEAR = 365 * 24 * 3600 * 1000;
let fleet: SimFleet;

beforeAll(async () => {
  fleet = await SimFleet.create({ nodes: 3, seed: 21, namespace: "bkv-red", epoch: 1 });
});

async function countersign(artifact: Uint8Array, logSignature: Uint8Array) {
  const n = fleet.node(1);
  const tag = 7000 + n.frames.length;
  await fleet.deliverFrame(n, { type: "countersign", tag, artifact, logSignature });
  const f = n.frames.find((x: HsmToHost) => x.type === "countersignature" && x.tag === tag);
  if (f?.type !== "countersignature") throw new Error("no answer");
  return f;
}

describe("red team: counter-signature validity window", () => {
  it("refuses windows that start 50 and 53 years after the HSM's clock (each within the length limit)", async () => {
    const st = decodeStatement(decodeEvidence(fleet.evidence).statement);
    const start = fleet.time + 50 * YEAR;
    const signed: boolean[] = [];
    for (const notBefore of [start, start + MAX_ARTIFACT_VALIDITY_MS]) {
      const a = encodeArtifact(
        artifactFromStatement(st, { notBefore, notAfter: notBefore + MAX_ARTIFACT_VALIDITY_MS }),
      );
      const r = await countersign(a, fleet.logSign(a));
      signed.push(r.ok);
    }
    // Today both are counter-signed: six years of bundles, half a century from now.
    expect(signed).toEqual([false, false]);
  });
});
