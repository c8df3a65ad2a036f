/**
 * The audit of deployment evidence, with the operator's attacks on it: a member attested by a root
 * the auditor does not trust, a member running other code, a raised guess limit, a missing member
 * signature, members' challenges missing, short, repeated or left out of the transcript, an old
 * fleet's evidence for a new one, and bytes that do not decode. Each fails and
 * names its check; clean evidence passes every check.
 */
import { createHash } from "node:crypto";
import { type AuditOptions, auditEvidence } from "@bkv/client";
import { ed25519VerifyWith, newVendorRoot, TEST_MEASUREMENT, TEST_VENDOR } from "@bkv/hsm-software";
import { SimFleet } from "@bkv/sim";
import { decodeEvidence, decodeStatement, encodeEvidence, encodeStatement } from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";

const base: AuditOptions = {
  vendorRoots: [TEST_VENDOR.publicKey],
  expectedMeasurement: TEST_MEASUREMENT,
  maxGuessLimit: 10,
  verify: ed25519VerifyWith,
  sha256: (b) => new Uint8Array(createHash("sha256").update(b).digest()),
};

const failed = (r: ReturnType<typeof auditEvidence>) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => c.name)
    .sort();

let evidence: Uint8Array;
let fleetId: Uint8Array;

beforeAll(async () => {
  const f = await SimFleet.create({ nodes: 3, seed: 1 });
  evidence = f.evidence;
  fleetId = decodeStatement(decodeEvidence(evidence).statement).fleetId;
});

describe("bkv audit: deployment evidence", () => {
  it("clean evidence passes every check, and the report names the fleet", () => {
    const r = auditEvidence(evidence, { ...base, expectedFleetId: fleetId });
    expect(failed(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.fleet?.n).toBe(3);
    expect(r.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        "attestation.3",
        "signature.3",
        "measurement.source",
        "policy.guess-limit",
        "challenges.count",
        "challenges.length",
        "challenges.distinct",
        "transcript",
      ]),
    );
  });

  it("members' challenges: one missing, one short, one repeated, or left out of the transcript", () => {
    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const [c1, c2, c3] = st.challenges as [Uint8Array, Uint8Array, Uint8Array];
    expect(c1).toHaveLength(32);
    const withChallenges = (challenges: Uint8Array[]) =>
      failed(
        auditEvidence(encodeEvidence({ ...ev, statement: encodeStatement({ ...st, challenges }) }), base),
      );
    const sigs = ["signature.1", "signature.2", "signature.3"];
    expect(withChallenges([c1, c2])).toEqual(["challenges.count", ...sigs, "transcript"]);
    expect(withChallenges([c1, c2.slice(0, 16), c3])).toEqual(["challenges.length", ...sigs, "transcript"]);
    expect(withChallenges([c1, c2, c1])).toEqual(["challenges.distinct", ...sigs, "transcript"]);
    const noSteps = encodeEvidence({
      ...ev,
      transcript: ev.transcript.filter((t) => t.step !== "challenge"),
    });
    const r = auditEvidence(noSteps, base);
    expect(failed(r)).toEqual(["transcript"]);
    expect(r.checks.find((c) => c.name === "transcript")?.detail).toContain("challenge 1");
  });

  it("a member attested by a root the auditor does not trust", async () => {
    // The HSMs were (wrongly) configured to accept a rogue root too; the auditor trusts only the vendor's.
    const rogue = newVendorRoot();
    const roots = [TEST_VENDOR.publicKey, rogue.publicKey];
    const f = await SimFleet.create({
      nodes: 3,
      seed: 2,
      platforms: [{ vendorRoots: roots }, { vendorRoots: roots }, { vendor: rogue, vendorRoots: roots }],
    });
    expect(failed(auditEvidence(f.evidence, base))).toEqual(["attestation.3"]);
  });

  it("a fleet running other code than the auditor built, and a member's measurement edited", () => {
    const other = new Uint8Array(32).fill(0xab);
    expect(failed(auditEvidence(evidence, { ...base, expectedMeasurement: other }))).toEqual([
      "measurement.source",
    ]);

    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const m2 = { ...st.members[1]!, measurement: other };
    const edited = encodeEvidence({
      ...ev,
      statement: encodeStatement({ ...st, members: [st.members[0]!, m2, st.members[2]!] }),
    });
    const names = failed(auditEvidence(edited, base));
    expect(names).toEqual(
      expect.arrayContaining(["attestation.2", "measurement.2", "signature.1", "signature.2", "signature.3"]),
    );
  });

  it("a raised guess limit: edited into the statement, or a genuine fleet above what the auditor accepts", async () => {
    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const raised = encodeEvidence({
      ...ev,
      statement: encodeStatement({ ...st, policy: { ...st.policy, guessLimit: 1000 } }),
    });
    expect(failed(auditEvidence(raised, base))).toEqual(
      expect.arrayContaining(["policy.guess-limit", "signature.1", "signature.2", "signature.3"]),
    );
    const f = await SimFleet.create({ nodes: 1, seed: 3, guessLimit: 20 });
    expect(failed(auditEvidence(f.evidence, base))).toEqual(["policy.guess-limit"]);
    expect(failed(auditEvidence(f.evidence, { ...base, maxGuessLimit: 20 }))).toEqual([]);
  });

  it("a missing member signature", () => {
    const ev = decodeEvidence(evidence);
    const dropped = encodeEvidence({ ...ev, signatures: ev.signatures.slice(0, 2) });
    expect(failed(auditEvidence(dropped, base))).toEqual(["signature.3", "signatures.count"]);
    const swapped = encodeEvidence({
      ...ev,
      signatures: [ev.signatures[0]!, ev.signatures[2]!, ev.signatures[1]!],
    });
    expect(failed(auditEvidence(swapped, base))).toEqual(["signature.2", "signature.3", "transcript"]);
  });

  it("evidence of an old fleet presented for a new one", async () => {
    const newer = await SimFleet.create({ nodes: 3, seed: 4 });
    const newId = decodeStatement(decodeEvidence(newer.evidence).statement).fleetId;
    expect(failed(auditEvidence(evidence, { ...base, expectedFleetId: newId }))).toEqual(["fleet.id"]);
    expect(failed(auditEvidence(newer.evidence, { ...base, expectedFleetId: newId }))).toEqual([]);
  });

  it("bytes that do not decode fail one named check instead of throwing", () => {
    for (const bad of [
      new Uint8Array(0),
      evidence.slice(0, evidence.length - 1),
      new Uint8Array([...evidence, 0]),
    ]) {
      const r = auditEvidence(bad, base);
      expect(r.ok).toBe(false);
      expect(failed(r)).toEqual(["evidence.format"]);
    }
  });
});
