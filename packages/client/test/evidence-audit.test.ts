/**
 * The audit of deployment evidence (auditEvidence, the one verifier of the SDK, `bkv audit`, the
 * monitor and the log), with the operator's attacks on it: a member attested by a root the auditor
 * does not pin, wholly synthetic evidence under a test root, a member running other code, a raised
 * guess limit, a missing member signature, members' challenges missing, short or repeated, a
 * one-member fleet, a small-order member key with the R = identity, S = 0 forgery, a non-canonical
 * key, one key under two encodings, an invalid P-256 agree key, another namespace, log key or
 * release key, other witnesses than pinned, a successor guess limit above the fleet's own, an old fleet's evidence for a new
 * one, and bytes that do not decode. Each fails and names its
 * check; clean evidence passes every check.
 */
import { type AuditOptions, auditEvidence } from "@bkv/client";
import { decodeEvidence, decodeStatement, encodeEvidence, encodeStatement, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { MEASUREMENT, member, reattest, vendorRoot, world } from "./bundle-world.js";
import { CANONICAL_Y3, FORGED, IDENTITY, NONCANONICAL_Y3 } from "./ed25519-points.js";

const w = world();
const base: AuditOptions = {
  vendorRoots: [w.root.pin],
  measurements: [MEASUREMENT],
  maxGuessLimit: 10,
};

const failed = (r: ReturnType<typeof auditEvidence>) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => c.name)
    .sort();

const genuine = w.fleet();
const evidence = genuine.evidence;
const fleetId = genuine.st.fleetId;

describe("bkv audit: deployment evidence", () => {
  it("clean evidence passes every check, and the report names the fleet, its namespace, epoch and log key", () => {
    const r = auditEvidence(evidence, {
      ...base,
      expectedFleetId: fleetId,
      expectedNamespace: w.pins.namespace,
      expectedEpoch: 1,
      expectedLogKey: w.logRaw,
      expectedReleaseKey: w.release.publicKey,
    });
    expect(failed(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.fleet).toMatchObject({
      n: 3,
      namespace: w.pins.namespace,
      epoch: 1,
      logKey: toHex(w.logRaw),
      releaseKey: toHex(w.release.publicKey),
      maxSuccessorGuessLimit: 10,
    });
    expect(r.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        "attestation.3",
        "signature.3",
        "keys.3",
        "measurement.source",
        "policy.members",
        "policy.guess-limit",
        "challenges.count",
        "challenges.length",
        "challenges.distinct",
        "statement.namespace",
        "statement.epoch",
        "statement.log-key",
        "statement.release-key",
      ]),
    );
    expect(r.checks.map((c) => c.name)).not.toContain("transcript");
  });

  it("members' challenges: one missing, one short, one repeated", () => {
    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const [c1, c2, c3] = st.challenges as [Uint8Array, Uint8Array, Uint8Array];
    const withChallenges = (challenges: Uint8Array[]) =>
      failed(
        auditEvidence(encodeEvidence({ ...ev, statement: encodeStatement({ ...st, challenges }) }), base),
      );
    const sigs = ["signature.1", "signature.2", "signature.3"];
    expect(withChallenges([c1, c2])).toEqual(["challenges.count", ...sigs]);
    expect(withChallenges([c1, c2.slice(0, 16), c3])).toEqual(["challenges.length", ...sigs]);
    expect(withChallenges([c1, c2, c1])).toEqual(["challenges.distinct", ...sigs]);
    // Re-signed by the members (they are the operator's in this test), the flaws still fail.
    const resigned = w.fleet({
      edit: (s) => ({ ...s, challenges: [s.challenges[0]!, s.challenges[0]!, s.challenges[2]!] }),
    });
    expect(failed(auditEvidence(resigned.evidence, base))).toEqual(["challenges.distinct"]);
  });

  it("a member attested by a root the auditor does not pin", () => {
    const rogue = vendorRoot("rogue");
    const f = w.fleet({ members: [member(w.root), member(w.root), member(rogue)] });
    expect(failed(auditEvidence(f.evidence, base))).toEqual(["attestation.3"]);
    expect(failed(auditEvidence(f.evidence, { ...base, vendorRoots: [] }))).toEqual([
      "attestation.1",
      "attestation.2",
      "attestation.3",
    ]);
  });

  it("wholly synthetic evidence under a test root fails unless test roots are allowed", () => {
    const dev = vendorRoot("bkv dev vendor root", true);
    const f = w.fleet({ root: dev });
    const opts = { ...base, vendorRoots: [w.root.pin, dev.pin] };
    const r = auditEvidence(f.evidence, opts);
    expect(failed(r)).toEqual(["attestation.1", "attestation.2", "attestation.3"]);
    expect(r.checks.find((c) => c.name === "attestation.1")?.detail).toContain("test vendor root");
    expect(failed(auditEvidence(f.evidence, { ...opts, allowTestRoots: true }))).toEqual([]);
  });

  it("a fleet running other code than the auditor accepts, and a member's measurement edited", () => {
    const other = new Uint8Array(32).fill(0xab);
    expect(failed(auditEvidence(evidence, { ...base, measurements: [other] }))).toEqual([
      "measurement.source",
    ]);
    expect(failed(auditEvidence(evidence, { ...base, measurements: [other, MEASUREMENT] }))).toEqual([]);
    expect(failed(auditEvidence(evidence, { ...base, measurements: [] }))).toEqual(["measurement.source"]);
    // The older option name still counts as one accepted measurement.
    expect(
      failed(auditEvidence(evidence, { ...base, measurements: undefined, expectedMeasurement: MEASUREMENT })),
    ).toEqual([]);

    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const m2 = { ...st.members[1]!, measurement: other };
    const edited = encodeEvidence({
      ...ev,
      statement: encodeStatement({ ...st, members: [st.members[0]!, m2, st.members[2]!] }),
    });
    expect(failed(auditEvidence(edited, base))).toEqual(
      expect.arrayContaining(["attestation.2", "measurement.2", "signature.1", "signature.2", "signature.3"]),
    );
  });

  it("a raised guess limit: edited into the statement, or a genuine fleet above what the auditor accepts", () => {
    const ev = decodeEvidence(evidence);
    const st = decodeStatement(ev.statement);
    const raised = encodeEvidence({
      ...ev,
      statement: encodeStatement({ ...st, policy: { ...st.policy, guessLimit: 1000 } }),
    });
    expect(failed(auditEvidence(raised, base))).toEqual(
      expect.arrayContaining(["policy.guess-limit", "signature.1", "signature.2", "signature.3"]),
    );
    const f = w.fleet({ guessLimit: 20 });
    expect(failed(auditEvidence(f.evidence, base))).toEqual(["policy.guess-limit"]);
    expect(failed(auditEvidence(f.evidence, { ...base, maxGuessLimit: 20 }))).toEqual([]);
  });

  it("N = 1 fails unless small fleets are allowed (development); N = 2 never passes", () => {
    const one = w.fleet({ n: 1 });
    expect(failed(auditEvidence(one.evidence, base))).toEqual(["policy.members"]);
    expect(failed(auditEvidence(one.evidence, { ...base, allowSmallFleet: true }))).toEqual([]);
    const two = w.fleet({ n: 2 });
    expect(failed(auditEvidence(two.evidence, { ...base, allowSmallFleet: true }))).toEqual([
      "policy.members",
    ]);
    expect(failed(auditEvidence(w.fleet({ n: 5 }).evidence, base))).toEqual([]);
  });

  it("a missing member signature", () => {
    const ev = decodeEvidence(evidence);
    const dropped = encodeEvidence({ ...ev, signatures: ev.signatures.slice(0, 2) });
    expect(failed(auditEvidence(dropped, base))).toEqual(["signature.3", "signatures.count"]);
    const swapped = encodeEvidence({
      ...ev,
      signatures: [ev.signatures[0]!, ev.signatures[2]!, ev.signatures[1]!],
    });
    expect(failed(auditEvidence(swapped, base))).toEqual(["signature.2", "signature.3"]);
  });

  it("a small-order member key with the R = identity, S = 0 forgery (attested by the root) is refused", () => {
    // The operator got the root (here: the test's) to attest the identity point as an HSM's key; its
    // "signature" is the forgery that verifies for any message under a lenient verifier.
    const m = member(w.root);
    const small = { ...m, attestation: reattest({ ...m.attestation, signKey: IDENTITY }, w.root) };
    const f = w.fleet({ members: [member(w.root), member(w.root), small] });
    const ev = decodeEvidence(f.evidence);
    const forged = encodeEvidence({ ...ev, signatures: [ev.signatures[0]!, ev.signatures[1]!, FORGED] });
    expect(failed(auditEvidence(forged, base))).toEqual(["keys.3", "signature.3"]);
  });

  it("a non-canonical member key, and one key under two encodings, do not make two members", () => {
    const a = member(w.root);
    const b = member(w.root);
    const k1 = { ...a, attestation: reattest({ ...a.attestation, signKey: CANONICAL_Y3 }, w.root) };
    const k2 = { ...b, attestation: reattest({ ...b.attestation, signKey: NONCANONICAL_Y3 }, w.root) };
    const f = w.fleet({ members: [k1, k2, member(w.root)] });
    const names = failed(auditEvidence(f.evidence, base));
    // Nobody can sign for y = 3, so signatures 1 and 2 fail too; what matters: key 2 is refused and
    // the two encodings are one point.
    expect(names).toEqual(["keys.2", "members.distinct", "signature.1", "signature.2"]);
  });

  it("an agree key that is not a P-256 point", () => {
    const m = member(w.root);
    const off = m.attestation.agreeKey.slice();
    off[64] = off[64]! ^ 1;
    const bad = { ...m, attestation: reattest({ ...m.attestation, agreeKey: off }, w.root) };
    const f = w.fleet({ members: [member(w.root), bad, member(w.root)] });
    expect(failed(auditEvidence(f.evidence, base))).toEqual(["keys.2"]);
  });

  it("evidence for another namespace, epoch or log, or of an old fleet presented for a new one", () => {
    expect(failed(auditEvidence(evidence, { ...base, expectedNamespace: "other.test/vault" }))).toEqual([
      "statement.namespace",
    ]);
    expect(failed(auditEvidence(evidence, { ...base, expectedEpoch: 2 }))).toEqual(["statement.epoch"]);
    expect(failed(auditEvidence(evidence, { ...base, expectedLogKey: new Uint8Array(32).fill(1) }))).toEqual([
      "statement.log-key",
    ]);
    // A fleet that froze the operator's own release key, audited under the deployment's.
    const operatorKey = vendorRoot().publicKey;
    const own = w.fleet({ releaseKey: operatorKey });
    const r = auditEvidence(own.evidence, { ...base, expectedReleaseKey: w.release.publicKey });
    expect(failed(r)).toEqual(["statement.release-key"]);
    expect(r.checks.find((c) => c.name === "statement.release-key")?.detail).toContain(toHex(operatorKey));
    expect(failed(auditEvidence(own.evidence, { ...base, expectedReleaseKey: operatorKey }))).toEqual([]);
    // A fleet that froze the operator's own witnesses (or the pinned ones with a lower threshold),
    // audited under the deployment's witness policy: it would accept a successor on checkpoints
    // only the operator's witnesses cosigned.
    const pinned = w.fleet().st.witnessPolicy;
    const operatorWitness = { name: "operator.example/w", key: vendorRoot().publicKey };
    for (const witnessPolicy of [
      { witnesses: [operatorWitness], threshold: 1 },
      { witnesses: [pinned.witnesses[0]!, operatorWitness], threshold: 2 },
      { ...pinned, threshold: 1 },
    ]) {
      const theirs = w.fleet({ witnessPolicy });
      const rw = auditEvidence(theirs.evidence, { ...base, expectedWitnessPolicy: pinned });
      expect(failed(rw)).toEqual(["statement.witnesses"]);
      expect(rw.checks.find((c) => c.name === "statement.witnesses")?.detail).toContain(
        `the fleet froze witnesses ${witnessPolicy.threshold} of`,
      );
      expect(
        failed(auditEvidence(theirs.evidence, { ...base, expectedWitnessPolicy: witnessPolicy })),
      ).toEqual([]);
    }
    // The pinned witnesses in another order are the same policy.
    const reordered = { witnesses: [...pinned.witnesses].reverse(), threshold: pinned.threshold };
    expect(failed(auditEvidence(evidence, { ...base, expectedWitnessPolicy: reordered }))).toEqual([]);
    const newer = w.fleet();
    expect(failed(auditEvidence(evidence, { ...base, expectedFleetId: newer.st.fleetId }))).toEqual([
      "fleet.id",
    ]);
    expect(failed(auditEvidence(newer.evidence, { ...base, expectedFleetId: newer.st.fleetId }))).toEqual([]);
  });

  it("a statement whose successor guess limit is above its own guess limit fails to decode, even signed by every member", () => {
    // The members (the operator's, in this test) sign a statement letting a successor give each
    // record more guesses than this fleet does: no verifier reads it as a fleet.
    const f = w.fleet({ edit: (s) => ({ ...s, maxSuccessorGuessLimit: s.policy.guessLimit + 1 }) });
    const r = auditEvidence(f.evidence, base);
    expect(r.ok).toBe(false);
    expect(r.fleet).toBeNull();
    expect(failed(r)).toEqual(["evidence.format"]);
    expect(r.checks[0]!.detail).toMatch(
      /maximum successor guess limit 11 is above the fleet's own guess limit 10/,
    );
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
