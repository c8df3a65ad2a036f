/**
 * Red team (the vault operator, with a log that appends what it is asked to: DESIGN.md §2 lets the
 * log operator "sign anything", trusting it only for publicity): two fleets at ONE epoch of a
 * namespace. An honest log appends one artifact per (namespace, epoch) (log-server.ts, rule 4), but
 * the client does not rely on it: it remembers the newest epoch it verified (red-team-epoch.test.ts),
 * not which fleet that epoch was. So once it has used fleet A at epoch E, the operator can hand it
 * fleet B, another genuine fleet (its own HSMs, valid evidence, logged, counter-signed) at the same
 * epoch E, and the client seals to B.
 *
 * Consequence, as for the epoch downgrade: a registration (a new device, a new PIN) lands in B while
 * the user's record in A lives on with the same key K behind it: two live records for one user, the
 * guess limit twice (DESIGN.md §8: "each record answering guesses in exactly one fleet at any
 * moment"; "Clients follow the log to the newest epoch").
 *
 * Expected: a bundle for the epoch this client verified, but for another artifact than the one it
 * verified at that epoch, is refused (a BUNDLE_ code) before anything is sent, and the stored
 * checkpoint stays.
 */
import { createHash } from "node:crypto";
import { memoryCheckpointStore, memoryVerifiedCache, verifyBundle } from "@bkv/client";
import { consistencyProofFrom, toBase64 } from "@bkv/tlog";
import { isBkvError } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

async function outcome(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => "accepted",
    (err: unknown) => err,
  );
  return isBkvError(e) ? e.code : String(e);
}

describe("red team: two fleets at one epoch", () => {
  it("a client that verified fleet A at epoch 1 refuses fleet B logged at the same epoch", async () => {
    const w = world();
    const a = w.append(w.fleet({ epoch: 1 }));
    const b = w.append(w.fleet({ epoch: 1 }));
    const store = memoryCheckpointStore();
    const cache = memoryVerifiedCache();
    const first = await verifyBundle(await w.bundle(a), w.pins, store, NOW, cache);
    expect(first.artifact.epoch).toBe(1);
    const stored = await store.load();
    // Same checkpoint, same namespace and epoch, another genuine fleet.
    const sibling = await w.bundle(b);
    const r = await outcome(verifyBundle(sibling, w.pins, store, NOW, cache));
    expect(r).toMatch(/^BUNDLE_/);
    expect(await store.load()).toEqual(stored);
  });

  it("the fleet the client verified at its epoch is still accepted (the same artifact again)", async () => {
    const w = world();
    const a = w.append(w.fleet({ epoch: 1 }));
    const store = memoryCheckpointStore();
    const cache = memoryVerifiedCache();
    await verifyBundle(await w.bundle(a), w.pins, store, NOW, cache);
    // A later checkpoint (another namespace's entry appended), the same fleet.
    w.append(w.fleet({ epoch: 1, namespace: "example.test/other" }));
    const proof = consistencyProofFrom(w.tree, 1, 2).map(toBase64);
    const again = await verifyBundle(
      { ...(await w.bundle(a)), consistency: { from: 1, proof } },
      w.pins,
      store,
      NOW,
      cache,
    );
    expect(again.artifact.epoch).toBe(1);
  });

  it("two verifications racing on one store, one per sibling fleet: one wins, the other is refused, the store names the winner", async () => {
    const w = world();
    const a = w.append(w.fleet({ epoch: 1 }));
    const b = w.append(w.fleet({ epoch: 1 }));
    for (let round = 0; round < 10; round++) {
      const store = memoryCheckpointStore();
      const [ba, bb] = [await w.bundle(a), await w.bundle(b)];
      const both = round % 2 === 0 ? [ba, bb] : [bb, ba];
      const results = await Promise.all(
        both.map((x) => outcome(verifyBundle(x, w.pins, store, NOW, memoryVerifiedCache()))),
      );
      expect(results.filter((r) => r === "accepted")).toHaveLength(1);
      expect(results.filter((r) => r === "BUNDLE_SPLIT_VIEW")).toHaveLength(1);
      const winner = both[results.indexOf("accepted")]!;
      const digest = createHash("sha256").update(Buffer.from(winner.artifact, "base64")).digest("hex");
      expect((await store.load())?.artifact).toBe(digest);
    }
  });
});
