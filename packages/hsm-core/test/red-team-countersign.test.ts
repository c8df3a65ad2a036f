/**
 * Red team (operator): the fleet's counter-signature bounds the *length* of an artifact's validity
 * window (MAX_ARTIFACT_VALIDITY_MS) but not where the window lies. A host asks the fleet to
 * counter-sign windows that start decades after the HSM's own clock, back to back, and so holds
 * bundles the fleet vouches for long past its planned replacement: the three-year limit bounds
 * nothing. The HSM now refuses a window that starts more than MAX_ARTIFACT_LEAD_MS after its own
 * clock, so nothing it signs is valid past that lead plus MAX_ARTIFACT_VALIDITY_MS.
 */
import { SimFleet } from "@bkv/sim";
import {
  artifactFromStatement,
  decodeEvidence,
  decodeStatement,
  encodeArtifact,
  type HsmToHost,
  MAX_ARTIFACT_LEAD_MS,
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
    // Both refused (they were counter-signed before the HSM bounded where a window starts).
    expect(signed).toEqual([false, false]);
  });

  it("a window may start up to MAX_ARTIFACT_LEAD_MS after the HSM's clock, not a day more", async () => {
    const st = decodeStatement(decodeEvidence(fleet.evidence).statement);
    const DAY = 24 * 3600 * 1000;
    const answers: { ok: boolean; message?: string }[] = [];
    for (const lead of [MAX_ARTIFACT_LEAD_MS - DAY, MAX_ARTIFACT_LEAD_MS + DAY]) {
      const notBefore = fleet.time + lead;
      const a = encodeArtifact(artifactFromStatement(st, { notBefore, notAfter: notBefore + YEAR }));
      const r = await countersign(a, fleet.logSign(a));
      answers.push(r.ok ? { ok: true } : { ok: false, message: r.message });
    }
    expect(answers[0]).toEqual({ ok: true });
    expect(answers[1]?.ok).toBe(false);
    expect(answers[1]?.message).toMatch(/starts .* after this HSM's clock/);
  });
});
