/** The in-process fleet: real HSM cores of a fleet elect a leader and serve the vault. */

import { describe, expect, it } from "vitest";
import { SimFleet } from "../src/index.js";
import { simClient } from "./sim-client.js";

const KEY = new Uint8Array(32).fill(4);

describe("in-process fleet", () => {
  for (const n of [1, 3, 5]) {
    it(`a fleet of ${n} elects a leader and serves registrations and recoveries through any node`, async () => {
      const f = await SimFleet.create({ nodes: n, seed: n });
      expect(f.leader()).toBeGreaterThan(0);
      await simClient(f, "alice").register("1234", KEY);
      for (let i = 1; i <= n; i++) {
        expect((await simClient(f, "alice", i).recover("1234")).backupKey).toEqual(KEY);
      }
      await expect(simClient(f, "alice", n).recover("0000")).rejects.toMatchObject({
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
    await simClient(f, "alice").register("1234", KEY);
    f.crash(3);
    for (let i = 0; i < 6; i++) {
      await expect(simClient(f, "alice").recover("0000")).rejects.toMatchObject({ code: "WRONG_PIN" });
      await simClient(f, "alice").recover("1234");
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
    await expect(simClient(f, "alice", 3).recover("0000")).rejects.toMatchObject({
      code: "WRONG_PIN",
      guessesRemaining: 9,
    });
  });
});

describe("one genesis per HSM", () => {
  it("a member whose NVRAM and storage were wiped is a new HSM: its saved genesis package is refused", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 11 });
    const saved = f.node(1).packages!;
    await simClient(f, "alice").register("1234", KEY);
    const w = f.leader() === 2 ? 3 : 2; // a follower, so the fleet keeps its leader
    const n = f.node(w);
    const old = n.booted;
    if (old?.type !== "booted") throw new Error("the node did not boot");
    // The operator wipes its NVRAM and storage and restarts it.
    f.crash(w);
    n.hsm.nvram = null;
    n.stored = { snapshot: null, entries: [] };
    n.frames = [];
    const b = await f.start(w);
    if (b.type !== "booted") throw new Error(`the node did not boot: ${JSON.stringify(b)}`);
    expect(b.node).toBe(0);
    expect(b.identity).not.toEqual(old.identity); // a new identity: the old one died with NVRAM
    expect(b.challenge).toHaveLength(32);
    // Replaying its saved package to rejoin the fleet is refused by name, and nothing is stored.
    await f.deliverFrame(n, {
      type: "genesis-join",
      package: saved.packages[w - 1]!,
      statement: saved.statement,
    });
    await f.settle();
    expect(n.booted).toMatchObject({ type: "failed", code: "GENESIS_CHALLENGE" });
    expect(n.hsm.nvram).toBeNull();
    expect(n.stored.entries).toHaveLength(0);
    expect(n.frames.some((m) => m.type === "genesis-signature" || m.type === "persist")).toBe(false);
    // The rest of the fleet serves on.
    expect((await simClient(f, "alice").recover("1234")).backupKey).toEqual(KEY);
  });
});
