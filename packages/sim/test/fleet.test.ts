/** The in-process fleet: real HSM cores of a fleet elect a leader and serve the vault. */

import { VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { describe, expect, it } from "vitest";
import { SimFleet } from "../src/index.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(4);

function client(f: SimFleet, user: string, node?: number) {
  return new VaultClient({
    user,
    vaultPublicKey: f.vaultPublicKey(),
    transport: f.transport(node),
    keyStretching: LIGHT,
    hpke: nodeHpkeSealer,
    now: () => f.time,
  });
}

describe("in-process fleet", () => {
  for (const n of [1, 3, 5]) {
    it(`a fleet of ${n} elects a leader and serves registrations and recoveries through any node`, async () => {
      const f = await SimFleet.create({ nodes: n, seed: n });
      expect(f.leader()).toBeGreaterThan(0);
      await client(f, "alice").register("1234", KEY);
      for (let i = 1; i <= n; i++) {
        expect((await client(f, "alice", i).recover("1234")).backupKey).toEqual(KEY);
      }
      await expect(client(f, "alice", n).recover("0000")).rejects.toMatchObject({
        code: "WRONG_PIN",
        guessesRemaining: 9,
      });
      // Every member applies the same committed state.
      for (let t = 0; t < 5; t++) await f.tick();
      const states = f.nodes.map((x) => x.core!.inspect().state);
      const index = Math.min(...states.map((s) => s.index));
      expect(index).toBeGreaterThan(3);
      for (const s of states) expect(s.records.get("alice")?.guessesUsed).toBe(1);
    });
  }
});
