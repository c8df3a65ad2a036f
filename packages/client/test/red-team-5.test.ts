/**
 * Red team, fifth round (the vault operator, DESIGN.md §2; the log "signs anything" but its
 * entries are public and append-only): client trust when two verifications race on one checkpoint
 * store (two tabs of the web app on one localStorage, two CLI runs on one checkpoint file, or one
 * VaultClient running two operations).
 *
 * The compare-and-swap in verify-bundle.ts (remember) has a branch for "a smaller checkpoint was
 * stored meanwhile, and this bundle carries no consistency proof from it": it returns success and
 * stores nothing. If the bundle that took that branch was for a NEWER epoch than the one stored
 * meanwhile, the client has used the newer fleet but its store still names the older epoch, so the
 * epoch downgrade that red-team-epoch.test.ts closed is open again: a later bundle for the old
 * epoch (its log entry is still in the log, its signatures are public, the operator keeps the old
 * fleet running) is accepted.
 *
 * Expected: once a verification of epoch E has returned success, the store remembers at least
 * epoch E, and a bundle for an older epoch is refused (a BUNDLE_ code).
 */
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

describe("red team 5: an epoch verified in a lost compare-and-swap race", () => {
  it("epoch 2 verified while an epoch-1 bundle of a smaller checkpoint is stored meanwhile: the store still ends at epoch 2 and epoch 1 is refused afterwards", async () => {
    const w = world();
    const e1 = w.append(w.fleet({ epoch: 1 }));
    // The device verified epoch 1 at a checkpoint of size 1.
    const store = memoryCheckpointStore();
    await verifyBundle(await w.bundle(e1), w.pins, store, NOW, memoryVerifiedCache());
    expect(await store.load()).toMatchObject({ size: 1, epoch: 1 });
    // The log grows: the successor fleet (epoch 2), then another namespace's entry.
    const e2 = w.append(w.fleet({ epoch: 2 }));
    w.append(w.fleet({ epoch: 1, namespace: "example.test/other" }));
    expect(w.tree.size).toBe(3);
    const from1 = (size: number) => ({ from: 1, proof: consistencyProofFrom(w.tree, 1, size).map(toBase64) });
    // Two verifications at once, both against the stored size-1 checkpoint: the old fleet at a
    // size-2 checkpoint, the new fleet at size 3. The old one stores first; the new one loses the
    // compare-and-swap to a smaller checkpoint it has no proof from.
    const older = { ...(await w.bundle(e1, 2)), consistency: from1(2) };
    const newer = { ...(await w.bundle(e2, 3)), consistency: from1(3) };
    const [rOld, rNew] = await Promise.all([
      outcome(verifyBundle(older, w.pins, store, NOW, memoryVerifiedCache())),
      outcome(verifyBundle(newer, w.pins, store, NOW, memoryVerifiedCache())),
    ]);
    expect(rOld).toBe("accepted");
    if (rNew !== "accepted") return; // refusing the newer one is safe too
    // The device used epoch 2: its store must say so, and the old fleet, offered again at the
    // newest checkpoint, must be refused.
    const epochAfter = (await store.load())?.epoch;
    const stored = await store.load();
    const again = {
      ...(await w.bundle(e1, 3)),
      consistency: { from: stored!.size, proof: consistencyProofFrom(w.tree, stored!.size, 3).map(toBase64) },
    };
    const downgrade = await outcome(verifyBundle(again, w.pins, store, NOW, memoryVerifiedCache()));
    expect({ epochAfter, downgrade }).toEqual({
      epochAfter: 2,
      downgrade: expect.stringMatching(/^BUNDLE_/),
    });
  });
  it("a fresh device (no checkpoint yet) racing the two epochs: whichever checkpoint stays, epoch 1 is refused once epoch 2 was accepted", async () => {
    const w = world();
    const e1 = w.append(w.fleet({ epoch: 1 }));
    w.append(w.fleet({ epoch: 1, namespace: "example.test/other" }));
    const e2 = w.append(w.fleet({ epoch: 2 }));
    for (const order of [0, 1]) {
      const store = memoryCheckpointStore();
      const older = await w.bundle(e1, 2);
      const newer = await w.bundle(e2, 3);
      const both = order === 0 ? [older, newer] : [newer, older];
      const results = await Promise.all(
        both.map((b) => outcome(verifyBundle(b, w.pins, store, NOW, memoryVerifiedCache()))),
      );
      const newerResult = results[both.indexOf(newer)];
      if (newerResult !== "accepted") continue;
      const stored = await store.load();
      expect(stored?.epoch).toBe(2);
      const again = {
        ...(await w.bundle(e1, 3)),
        ...(stored!.size < 3
          ? {
              consistency: {
                from: stored!.size,
                proof: consistencyProofFrom(w.tree, stored!.size, 3).map(toBase64),
              },
            }
          : {}),
      };
      expect(await outcome(verifyBundle(again, w.pins, store, NOW, memoryVerifiedCache()))).toMatch(
        /^BUNDLE_/,
      );
    }
  });
});
