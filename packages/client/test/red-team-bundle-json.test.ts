/**
 * Red team: JSON type confusion in a BundleJson the operator's host serves. Every field was tried
 * with wrong types (strings for numbers, arrays, null, huge values): each is refused with a typed
 * BkvError, except `consistency: null` for a client that has seen a checkpoint, which escapes as a
 * TypeError ("Cannot read properties of null") from checkAgainstSeen: the VaultClient's first
 * bundle check then fails with an untyped error (no BUNDLE_ code, so callers and the CLI cannot tell
 * it from a bug). Nothing is accepted, but the rule is "every bad input gets a clear typed error".
 */
import { memoryCheckpointStore, memoryVerifiedCache, verifyBundle } from "@bkv/client";
import { isBkvError } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

describe("red team: BundleJson type confusion", () => {
  it("consistency: null after a checkpoint was seen is a typed refusal, not a TypeError", async () => {
    const w = world();
    const i = w.append(w.fleet());
    const j = w.append(w.fleet({ epoch: 2 }));
    const store = memoryCheckpointStore();
    await verifyBundle(await w.bundle(i, 1), w.pins, store, NOW, memoryVerifiedCache());
    const seen = await store.load();
    const b = { ...(await w.bundle(j)), consistency: null } as unknown as Parameters<typeof verifyBundle>[0];
    const e = await verifyBundle(b, w.pins, store, NOW, memoryVerifiedCache()).then(
      () => new Error("accepted"),
      (err: unknown) => err,
    );
    expect(isBkvError(e) ? e.code : String(e)).toMatch(/^BUNDLE_|^MALFORMED$/);
    expect(await store.load()).toEqual(seen);
  });
});
