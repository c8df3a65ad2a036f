/**
 * Red team (the vault operator's powers only): an epoch downgrade. DESIGN.md §8: "Clients follow
 * the log to the newest epoch." Once a client has verified (and used) the namespace's epoch 2 fleet,
 * the operator can still hand it the bundle of epoch 1: a real fleet, properly logged, evidence
 * valid, counter-signed, within its validity window (the operator keeps the old hosts running, or
 * replays their bundle, which it holds). The client accepts it and seals what depends on the PIN to
 * the old fleet's key. Nothing on the client remembers the newest epoch it has used.
 *
 * Consequences: a new registration lands in the old fleet (whose records a migration is meant to
 * destroy), the operator chooses per operation which fleet a user's record lives in (two live
 * records under one PIN: the guess limit twice, the case DESIGN.md §8 rejects), and a fleet that was
 * replaced (e.g. for its code) keeps serving clients that already moved on until its window ends.
 *
 * Expected: a bundle for an epoch lower than one this client has verified in its namespace is
 * refused (a BUNDLE_ code) before anything is sent, and the stored checkpoint stays.
 */
import {
  memoryCheckpointStore,
  memoryVerifiedCache,
  VaultClient,
  type VaultTransport,
  verifyBundle,
} from "@bkv/client";
import { SimFleet } from "@bkv/sim";
import { type BundleJson, isBkvError } from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

async function outcome(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => "accepted",
    (err: unknown) => err,
  );
  return isBkvError(e) ? e.code : String(e);
}

describe("red team: epoch downgrade", () => {
  it("a client that verified epoch 2 accepts epoch 1's bundle afterwards", async () => {
    const w = world();
    const e1 = w.append(w.fleet({ epoch: 1 }));
    const e2 = w.append(w.fleet({ epoch: 2 }));
    const store = memoryCheckpointStore();
    const cache = memoryVerifiedCache();
    const newest = await verifyBundle(await w.bundle(e2), w.pins, store, NOW, cache);
    expect(newest.artifact.epoch).toBe(2);
    const stored = await store.load();
    // The same checkpoint (no rollback of the tree), the older fleet of the same namespace.
    const old = await w.bundle(e1);
    const r = await outcome(verifyBundle(old, w.pins, store, NOW, cache));
    expect(r).toMatch(/^BUNDLE_/);
    expect(await store.load()).toEqual(stored);
  });

  describe("through the VaultClient", () => {
    let fleet: SimFleet;
    beforeAll(async () => {
      fleet = await SimFleet.create({ nodes: 1, seed: 11, startTime: NOW });
    });

    it("after an operation on epoch 2, a registration is sealed to epoch 1's (old) fleet", async () => {
      const w = world();
      // Epoch 1: the old fleet, still running (the in-process fleet); epoch 2: its successor.
      const old = w.append(w.fleet({ epoch: 1, vaultKey: fleet.vaultPublicKey() }));
      const next = w.append(w.fleet({ epoch: 2 }));
      const checkpoints = memoryCheckpointStore();
      // An earlier operation of this device verified the successor (epoch 2) with this store.
      await verifyBundle(await w.bundle(next), w.pins, checkpoints, NOW);
      // The operator now serves the old fleet's bundle (and its answers) to this client.
      const oldBundle: BundleJson = await w.bundle(old);
      const inner = fleet.transport();
      let sent = 0;
      const t: VaultTransport = {
        async bundle() {
          return oldBundle;
        },
        async send(envelope) {
          sent++;
          return { ...(await inner.send(envelope)), bundle: oldBundle };
        },
      };
      const client = new VaultClient({
        user: "red",
        trust: { pins: w.pins, checkpoints },
        transport: t,
        keyStretching: { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } },
        now: () => fleet.time,
      });
      const r = await outcome(client.register("1234", new Uint8Array(32).fill(3)));
      // Before the fix: "accepted" and 2 requests (register-start, register-finish with the PIN's record) sent.
      expect(r).toMatch(/^BUNDLE_/);
      expect(sent).toBe(0);
    });
  });
});
