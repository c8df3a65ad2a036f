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

describe("snapshots", () => {
  it("bound every node's log, and a node that was down catches up from the leader's snapshot", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 9, core: { snapshotEvery: 5 } });
    await client(f, "alice").register("1234", KEY);
    f.crash(3);
    for (let i = 0; i < 6; i++) {
      await expect(client(f, "alice").recover("0000")).rejects.toMatchObject({ code: "WRONG_PIN" });
      await client(f, "alice").recover("1234");
    }
    const leader = f.node(f.leader());
    expect(leader.stored.snapshot).not.toBeNull();
    expect(leader.stored.entries.length).toBeLessThan(10);
    // Node 3 is behind the leader's snapshot: it can only catch up by receiving it.
    const behind = f.node(3).stored.entries.at(-1)?.index ?? 0;
    expect(behind).toBeLessThan(leader.stored.snapshot!.index);
    await f.start(3);
    for (let t = 0; t < 40; t++) await f.tick();
    const v = f.node(3).core!.inspect();
    expect(v.state.index).toBe(leader.core!.inspect().state.index);
    expect(v.state.records.get("alice")?.guessesUsed).toBe(0);
    expect(f.node(3).stored.snapshot).not.toBeNull();
    // And it serves (through forwarding) with the right count.
    await expect(client(f, "alice", 3).recover("0000")).rejects.toMatchObject({
      code: "WRONG_PIN",
      guessesRemaining: 9,
    });
  });
});
