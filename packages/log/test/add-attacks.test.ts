/**
 * The operator's attacks on the log's POST /add (issue 11, "the log keeps garbage out"). The
 * operator holds the namespace's submitter key, so the signature stops everyone else and the
 * evidence check stops the operator: its own keys with garbage evidence, a genuine fleet's evidence
 * under a swapped vault key, members attested by a root the log does not trust, signatures over
 * other bytes, another fleet's evidence, a statement for another log, a raised guess limit, an
 * unbounded validity window, a measurement the log does not accept. Each is refused by name and
 * nothing is appended: the size, the checkpoint and the namespace's next epoch are unchanged.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { SIG_ED25519 } from "@bkv/tlog";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld, NOW, type Submission } from "./fleet-world.js";
import { add, getText, tempDir } from "./helpers.js";

const ORIGIN = "log.example/add-attacks";
const NS = "example.test/vault";
const quiet = () => {};

describe("POST /add refuses what it cannot vouch for", () => {
  const dir = tempDir();
  let log: RunningLog;
  let world: FleetWorld;
  let logKey: Uint8Array;
  const otherSubmitter = new Uint8Array(randomBytes(32));
  let checkpointBefore: string;

  beforeAll(async () => {
    logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey);
    log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        namespaces: [
          { namespace: NS, submitterKey: world.submitterKey },
          { namespace: "example.test/other", submitterKey: ed25519.getPublicKey(otherSubmitter) },
        ],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
    const first = world.fleet(NS, 1);
    expect((await add(log.url, first, world.sign(first))).status).toBe(200);
    checkpointBefore = (await getText(`${log.url}/checkpoint`)).body;
  });

  afterAll(async () => {
    await log?.close();
    dir.remove();
  });

  /** The refusal's status and code; and nothing changed. */
  const refused = async (s: Omit<Submission, "statement">, signature: Uint8Array | undefined) => {
    const r = await add(log.url, s, signature);
    expect(log.service.size).toBe(1);
    expect((await getText(`${log.url}/checkpoint`)).body).toBe(checkpointBefore);
    expect((await fetch(`${log.url}/bundle?namespace=${encodeURIComponent(NS)}&epoch=2`)).status).toBe(404);
    return { status: r.status, code: r.body.code, message: r.body.message ?? "" };
  };

  it("an /add without the submitter's signature", async () => {
    const f = world.fleet(NS, 2);
    expect(await refused(f, undefined)).toMatchObject({ status: 403, code: "SUBMITTER_SIGNATURE" });
  });

  it("an /add signed by another key: the operator's own, or another namespace's submitter", async () => {
    const f = world.fleet(NS, 2);
    const own = world.sign(f, new Uint8Array(randomBytes(32)));
    expect(await refused(f, own)).toMatchObject({ status: 403, code: "SUBMITTER_SIGNATURE" });
    expect(await refused(f, world.sign(f, otherSubmitter))).toMatchObject({
      status: 403,
      code: "SUBMITTER_SIGNATURE",
    });
    // The right key's signature, for another namespace's submission, does not carry over.
    const elsewhere = { ...f, namespace: "example.test/other" };
    expect(await refused(elsewhere, world.sign(f))).toMatchObject({
      status: 403,
      code: "SUBMITTER_SIGNATURE",
    });
  });

  it("a genuine signature over another submission (other evidence, other epoch), or a mangled one", async () => {
    const f = world.fleet(NS, 2);
    const g = world.fleet(NS, 2);
    const sigF = world.sign(f);
    expect(await refused({ ...f, evidence: g.evidence }, sigF)).toMatchObject({
      code: "SUBMITTER_SIGNATURE",
    });
    expect(await refused({ ...f, artifact: g.artifact }, sigF)).toMatchObject({
      code: "SUBMITTER_SIGNATURE",
    });
    expect(await refused({ ...f, epoch: 3 }, sigF)).toMatchObject({ code: "SUBMITTER_SIGNATURE" });
    const flipped = sigF.slice();
    flipped[10]! ^= 1;
    expect(await refused(f, flipped)).toMatchObject({ status: 403, code: "SUBMITTER_SIGNATURE" });
    expect(await refused(f, new Uint8Array(64))).toMatchObject({ status: 403, code: "SUBMITTER_SIGNATURE" });
  });

  it("a namespace the log does not host", async () => {
    const f = world.fleet("example.test/unknown", 1);
    expect(await refused(f, world.sign(f))).toMatchObject({ status: 403, code: "FORBIDDEN" });
  });

  it("the operator's own keys with garbage or no evidence, signed with the real submitter key", async () => {
    const ownKeys = world.fleet(NS, 2).artifact;
    for (const evidence of [new Uint8Array(randomBytes(200)), new Uint8Array(0)]) {
      const s = { namespace: NS, epoch: 2, artifact: ownKeys, evidence };
      const r = await refused(s, world.sign(s));
      expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
      expect(r.message).toContain("the evidence does not decode");
    }
    const garbageArtifact = { ...world.fleet(NS, 2), artifact: new Uint8Array(randomBytes(300)) };
    const r = await refused(garbageArtifact, world.sign(garbageArtifact));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("the artifact does not decode");
  });

  it("a genuine fleet's evidence with the operator's vault key or signing key in the artifact", async () => {
    const f = world.fleet(NS, 2, {
      artifact: {
        keys: [
          { role: "vault-hpke", key: new Uint8Array(randomBytes(32)) },
          { role: "fleet-signing", key: ed25519.getPublicKey(new Uint8Array(randomBytes(32))) },
        ],
      },
    });
    const r = await refused(f, world.sign(f));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("vault key");
    expect(r.message).toContain("fleet signing key");
  });

  it("another fleet's evidence for this artifact", async () => {
    const s = { ...world.fleet(NS, 2), evidence: world.fleet(NS, 2).evidence };
    const r = await refused(s, world.sign(s));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("fleet id");
  });

  it("members attested by a root the log does not trust", async () => {
    const rogue = new Uint8Array(randomBytes(32));
    const members = [world.members[0]!, world.members[1]!, world.memberOf(rogue)];
    const f = world.fleet(NS, 2, { members });
    const r = await refused(f, world.sign(f));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("attestation.3");
    expect(r.message).not.toContain("attestation.1");
  });

  it("members' signatures over other bytes than the statement", async () => {
    const f = world.fleet(NS, 2, { signOther: true });
    const r = await refused(f, world.sign(f));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("signature.1");
  });

  it("a fleet that froze another log's key, or whose artifact names another epoch", async () => {
    const f = world.fleet(NS, 2, {
      statement: { logKey: ed25519.getPublicKey(new Uint8Array(randomBytes(32))) },
    });
    const r = await refused(f, world.sign(f));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("another log's key");
    const later = world.fleet(NS, 3);
    const s = { ...later, epoch: 2 };
    const r2 = await refused(s, world.sign(s));
    expect(r2).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r2.message).toContain(`the artifact is for (${NS}, 3)`);
  });

  it("a genuine fleet whose guess limit is above the log's maximum", async () => {
    const g = world.fleet(NS, 2, { statement: { policy: { guessLimit: 100, n: 3, quorum: 2 } } });
    const r = await refused(g, world.sign(g));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("policy.guess-limit");
  });

  it("a validity window longer than a fleet counter-signs", async () => {
    const f = world.fleet(NS, 2, { artifact: { notBefore: NOW, notAfter: NOW + 4 * 366 * 86_400_000 } });
    const r = await refused(f, world.sign(f));
    expect(r).toMatchObject({ status: 422, code: "BUNDLE_EVIDENCE" });
    expect(r.message).toContain("validity window");
  });

  it("after all of that, the genuine next fleet appends at epoch 2", async () => {
    // New HSMs: the members of epoch 1 took part in their one genesis already.
    const f = world.fleet(NS, 2, { members: world.newMembers() });
    const r = await add(log.url, f, world.sign(f));
    expect([r.status, r.body.index, r.body.epoch]).toEqual([200, 1, 2]);
    expect(log.service.size).toBe(2);
  });
});

describe("a log configured with accepted measurements", () => {
  it("appends a fleet running an accepted measurement and refuses any other", async () => {
    const dir = tempDir();
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    const world = fleetWorld(logKey);
    const start = (measurements: Uint8Array[]) =>
      startLogServer(
        {
          dir: join(dir.path, "log"),
          origin: ORIGIN,
          onEvent: quiet,
          namespaces: [{ namespace: NS, submitterKey: world.submitterKey }],
          vendorRoots: [world.vendorRoot],
          measurements,
        },
        "127.0.0.1",
        0,
      );
    let log = await start([new Uint8Array(32).fill(9)]);
    try {
      const f = world.fleet(NS, 1);
      const r = await add(log.url, f, world.sign(f));
      expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
      expect(r.body.message).toContain("measurement.source");
      expect(log.service.size).toBe(0);
      await log.close();
      log = await start([new Uint8Array(32).fill(9), world.measurement]);
      expect((await add(log.url, f, world.sign(f))).status).toBe(200);
    } finally {
      await log.close();
      dir.remove();
    }
  });

  it("a log with no vendor root appends no fleet", async () => {
    const dir = tempDir();
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    const world = fleetWorld(logKey);
    const log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        namespaces: [{ namespace: NS, submitterKey: world.submitterKey }],
      },
      "127.0.0.1",
      0,
    );
    try {
      const f = world.fleet(NS, 1);
      const r = await add(log.url, f, world.sign(f));
      expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
      expect(r.body.message).toContain("no vendor root");
      expect(log.service.size).toBe(0);
    } finally {
      await log.close();
      dir.remove();
    }
  });
});
