/**
 * The client's checks of validation bundles, against what the vault operator or the log operator
 * could hand it: an artifact not in the log, logged but not counter-signed, counter-signed but not
 * logged, too few witness cosignatures, a checkpoint older than one seen, a split view, no proof of
 * consistency, an expired artifact, another namespace, a checkpoint the log did not sign. Each is
 * refused with its own code, and a refused bundle changes nothing the client remembers.
 */
import { type CheckpointStore, memoryCheckpointStore, verifyBundle } from "@bkv/client";
import { generateSignerKey, SIG_COSIGNATURE_V1, toBase64 } from "@bkv/tlog";
import { type BundleJson, ErrorCode, isBkvError } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(isBkvError(e) ? e.code : e).toBe(code);
}

async function unchanged(store: CheckpointStore, f: () => Promise<void>): Promise<void> {
  const before = await store.load();
  await f();
  expect(await store.load()).toEqual(before);
}

describe("validation bundles: the client's checks", () => {
  it("accepts a real bundle, learns the fleet's vault key, and remembers the checkpoint", async () => {
    const w = world();
    const f = w.fleet();
    const i = w.append(f);
    const store = memoryCheckpointStore();
    const v = await verifyBundle(await w.bundle(i), w.pins, store, NOW);
    expect(v.vaultPublicKey).toEqual(f.st.vaultPublicKey);
    expect(v.evidenceVerified).toBe(true);
    expect(v.cosigners.sort()).toEqual(["example.test/w1", "example.test/w2"]);
    expect((await store.load())?.size).toBe(1);
    // A newer checkpoint with a consistency proof from the one seen is accepted and remembered; the
    // artifact verified before needs no evidence now.
    w.append(w.fleet({ epoch: 2 }));
    const b = await w.bundle(i, undefined, false);
    b.consistency = { from: 1, proof: w.tree.consistencyProof(1, 2).map(toBase64) };
    expect((await verifyBundle(b, w.pins, store, NOW)).evidenceVerified).toBe(false);
    expect((await store.load())?.size).toBe(2);
    // A new fleet (the next epoch, new keys) needs no client update: the same pins accept it.
    const next = w.fleet({ epoch: 3, vaultKey: new Uint8Array(32).fill(12) });
    const j = w.append(next);
    const nb = await w.bundle(j);
    nb.consistency = { from: 2, proof: w.tree.consistencyProof(2, 3).map(toBase64) };
    expect((await verifyBundle(nb, w.pins, store, NOW)).vaultPublicKey).toEqual(new Uint8Array(32).fill(12));
  });

  it("an artifact not in the log (signed by the log, never appended)", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    const other = w.fleet();
    const logSignature = w.logSign(other.artifactBytes);
    const forged: BundleJson = {
      ...b,
      artifact: toBase64(other.artifactBytes),
      logSignature: toBase64(logSignature),
      countersignature: toBase64(w.countersign(other.artifactBytes, logSignature, other.fleetSeed)),
      evidence: toBase64(other.evidence),
    };
    const store = memoryCheckpointStore();
    await unchanged(store, () =>
      refused(verifyBundle(forged, w.pins, store, NOW), ErrorCode.BundleNotLogged),
    );
  });

  it("logged but not counter-signed by the fleet", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    const notByFleet = {
      ...b,
      countersignature: toBase64(w.countersign(f.artifactBytes, new Uint8Array(64), f.fleetSeed)),
    };
    const store = memoryCheckpointStore();
    await refused(verifyBundle(notByFleet, w.pins, store, NOW), ErrorCode.BundleNotCountersigned);
    const otherKey = {
      ...b,
      countersignature: toBase64(
        w.countersign(f.artifactBytes, new Uint8Array(64).fill(3), new Uint8Array(32).fill(1)),
      ),
    };
    await refused(verifyBundle(otherKey, w.pins, store, NOW), ErrorCode.BundleNotCountersigned);
    expect(await store.load()).toBeNull();
  });

  it("counter-signed by the fleet but not logged (the vault operator's own artifact)", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    // The operator holds the fleet key (inside its HSMs) but not the log's key.
    const mine = w.fleet({ vaultKey: new Uint8Array(32).fill(8) });
    const fakeLogSig = new Uint8Array(64).fill(1);
    const forged = {
      ...b,
      artifact: toBase64(mine.artifactBytes),
      logSignature: toBase64(fakeLogSig),
      countersignature: toBase64(w.countersign(mine.artifactBytes, fakeLogSig, mine.fleetSeed)),
      evidence: toBase64(mine.evidence),
    };
    await refused(verifyBundle(forged, w.pins, memoryCheckpointStore(), NOW), ErrorCode.BundleNotLogged);
  });

  it("the log's signature over the artifact must verify", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    const badSig = new Uint8Array(64).fill(2);
    const forged = {
      ...b,
      logSignature: toBase64(badSig),
      countersignature: toBase64(w.countersign(f.artifactBytes, badSig, f.fleetSeed)),
    };
    await refused(verifyBundle(forged, w.pins, memoryCheckpointStore(), NOW), ErrorCode.BundleLogSignature);
  });

  it("a checkpoint with too few (or forged) witness cosignatures", async () => {
    const w = world();
    w.append(w.fleet());
    const b = await w.bundle(0);
    const store = memoryCheckpointStore();
    await unchanged(store, () =>
      refused(verifyBundle({ ...b, checkpoint: "" }, w.pins, store, NOW), ErrorCode.BundleCheckpoint),
    );
    const one = { ...b, checkpoint: await w.checkpoint(1, [w.w1]) };
    await refused(verifyBundle(one, w.pins, store, NOW), ErrorCode.BundleWitnesses);
    const impostor = generateSignerKey("example.test/w2", SIG_COSIGNATURE_V1);
    const forged = { ...b, checkpoint: await w.checkpoint(1, [w.w1, impostor]) };
    await refused(verifyBundle(forged, w.pins, store, NOW), ErrorCode.BundleWitnesses);
    expect(await store.load()).toBeNull();
  });

  it("a checkpoint the pinned log did not sign", async () => {
    const w = world();
    w.append(w.fleet());
    const b = await w.bundle(0);
    const other = world();
    other.append(other.fleet());
    const foreign = { ...b, checkpoint: await other.checkpoint(1) };
    await refused(verifyBundle(foreign, w.pins, memoryCheckpointStore(), NOW), ErrorCode.BundleCheckpoint);
  });

  it("a checkpoint older than one the client has seen (rollback)", async () => {
    const w = world();
    w.append(w.fleet());
    w.append(w.fleet({ epoch: 2 }));
    const store = memoryCheckpointStore();
    await verifyBundle(await w.bundle(0, 2), w.pins, store, NOW);
    await refused(verifyBundle(await w.bundle(0, 1), w.pins, store, NOW), ErrorCode.BundleRollback);
    expect((await store.load())?.size).toBe(2);
  });

  it("two different checkpoints of the same size (split view)", async () => {
    const w = world();
    w.append(w.fleet());
    const store = memoryCheckpointStore();
    await verifyBundle(await w.bundle(0), w.pins, store, NOW);
    // The log shows this client another tree of the same size, properly signed and cosigned.
    const forked = w.tree.size;
    const b = await w.bundle(0);
    const otherRoot = new Uint8Array(32).fill(6);
    const split = { ...b, checkpoint: await w.checkpoint(forked, undefined, otherRoot) };
    await unchanged(store, () => refused(verifyBundle(split, w.pins, store, NOW), ErrorCode.BundleSplitView));
  });

  it("a larger checkpoint without a valid consistency proof from the one seen", async () => {
    const w = world();
    w.append(w.fleet());
    const store = memoryCheckpointStore();
    await verifyBundle(await w.bundle(0), w.pins, store, NOW);
    w.append(w.fleet({ epoch: 2 }));
    const b = await w.bundle(0);
    await refused(verifyBundle(b, w.pins, store, NOW), ErrorCode.BundleInconsistent);
    const wrong = { ...b, consistency: { from: 1, proof: [toBase64(new Uint8Array(32))] } };
    await unchanged(store, () =>
      refused(verifyBundle(wrong, w.pins, store, NOW), ErrorCode.BundleInconsistent),
    );
  });

  it("an expired artifact, and one not yet valid", async () => {
    const w = world();
    w.append(w.fleet({ notBefore: NOW - 10_000, notAfter: NOW - 1 }));
    const store = memoryCheckpointStore();
    await refused(verifyBundle(await w.bundle(0), w.pins, store, NOW), ErrorCode.BundleExpired);
    await refused(verifyBundle(await w.bundle(0), w.pins, store, NOW - 20_000), ErrorCode.BundleExpired);
    expect(await store.load()).toBeNull();
  });

  it("a bundle for another namespace", async () => {
    const w = world();
    w.append(w.fleet({ namespace: "other.test/vault" }));
    const store = memoryCheckpointStore();
    await refused(verifyBundle(await w.bundle(0), w.pins, store, NOW), ErrorCode.BundleNamespace);
    // An artifact naming another namespace than its log entry is refused too.
    const v = world();
    const f = v.fleet({ namespace: "other.test/vault" });
    v.append(f, { namespace: v.pins.namespace });
    await refused(verifyBundle(await v.bundle(0), v.pins, store, NOW), ErrorCode.BundleNamespace);
    expect(await store.load()).toBeNull();
  });
});
