/**
 * Red team, fourth round: attacks by the vault operator (DESIGN.md §2) on the storage check at boot
 * (its "snapshot past the tip" case) combined with recovery, which lowers the NVRAM tip while it
 * re-persists an old disk. Every test asserts the guarantee HOLDS, so a test fails when an attack
 * breaks it. Powers used: host storage (old copies, a snapshot taken from one copy), crashes and
 * restarts, partitions, ticks. Never the HSM code, its NVRAM or its keys.
 */

import { VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { SimFleet } from "../src/index.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(7);
const START = 1_800_000_000_000;

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

function guesses(f: SimFleet, user: string): (number | null)[] {
  return f.nodes.map((n) =>
    n.core === null ? null : (n.core.inspect().state.records.get(user)?.guessesUsed ?? -1),
  );
}

/** Every (index -> chain hash) any node ever applied; a second hash at one index is a safety break. */
class CommitWatch {
  readonly at = new Map<number, string>();
  readonly violations: string[] = [];
  constructor(readonly f: SimFleet) {}
  check(): void {
    for (const n of this.f.nodes) {
      if (n.core === null) continue;
      const s = n.core.inspect().state;
      const h = toHex(s.chainHash);
      const seen = this.at.get(s.index);
      if (seen !== undefined && seen !== h)
        this.violations.push(`node ${n.id} applied a different entry ${s.index}`);
      if (s.index > 0) this.at.set(s.index, h);
    }
  }
}

async function ticks(f: SimFleet, n: number, w: CommitWatch, only?: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    await f.tick(only);
    w.check();
  }
}

// ---------------------------------------------------------------------------------------------
// Attack: the NVRAM tip goes down while a rolled-back node re-persists its old disk (invariant 2
// allows it during recovery). A snapshot the node sealed before the rollback is then past that
// lowered tip, so a boot on that snapshot alone takes the storage check's "snapshot past the tip"
// branch (not a rollback). If that branch dropped the recover tip, the node would vote as if its
// log ended at the snapshot, and with the member holding the guesses down, a member that never
// saw them would be elected: the guesses would be forgotten.

describe("red team 4: a snapshot past a tip that recovery lowered", () => {
  it("an old disk re-persisted (tip goes down), then a boot on a snapshot sealed before the guesses: still recovering, no leader forgets the guesses", async () => {
    const f = await SimFleet.create({
      nodes: 3,
      seed: 401,
      guessLimit: 5,
      startTime: START,
      core: { snapshotEvery: 4, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
    });
    const watch = new CommitWatch(f);
    await ticks(f, 3, watch);
    const leader = f.leader();
    const [x, o] = [1, 2, 3].filter((i) => i !== leader) as [number, number];
    // An early copy of X's disk (genesis and the first no-op, no snapshot yet).
    const early = f.node(x).copyStorage();
    expect(early.snapshot).toBeNull();
    // Registrations until X has compacted: a snapshot of committed state, before any guess.
    await client(f, "alice", leader).register("1234", KEY);
    for (let k = 0; k < 8 && f.node(x).stored.snapshot === null; k++)
      await client(f, `filler${k}`, leader).register("9999", KEY);
    await ticks(f, 3, watch);
    const withSnap = f.node(x).copyStorage();
    expect(withSnap.snapshot).not.toBeNull();
    const snapIndex = withSnap.snapshot!.index;
    // O down: the two wrong guesses commit on the leader and X only.
    f.crash(o);
    for (const pin of ["0000", "0001"]) {
      await expect(client(f, "alice", leader).recover(pin)).rejects.toMatchObject({ code: "WRONG_PIN" });
    }
    await ticks(f, 4, watch);
    expect(guesses(f, "alice")[leader - 1]).toBe(2);
    const acknowledged = f.node(x).nvram()!.tip.index;
    expect(acknowledged).toBeGreaterThan(snapIndex);

    // X's old disk back, cut off from everyone: it boots recovering and re-persists the old log,
    // which brings its NVRAM tip below the snapshot it sealed earlier.
    f.blocked = (a, b) => a === x || b === x;
    f.crash(x);
    f.node(x).stored = early;
    expect(await f.start(x)).toMatchObject({ type: "booted", recovering: true });
    await ticks(f, 5, watch, [x]);
    const nv = f.node(x).nvram()!;
    expect(nv.tip.index).toBeLessThan(snapIndex);
    expect(nv.recover?.index).toBe(acknowledged);

    // Restart X on the pre-guess snapshot alone: past its (lowered) tip, so not a rollback, but the
    // recover tip must stay.
    f.crash(x);
    f.node(x).stored = { snapshot: withSnap.snapshot, entries: [] };
    expect(await f.start(x)).toMatchObject({ type: "booted", recovering: true });
    expect(f.node(x).nvram()!.recover?.index).toBe(acknowledged);

    // The member with the guesses goes down; O (which never saw them) comes back. X must not help
    // O lead.
    f.blocked = () => false;
    f.crash(leader);
    expect(await f.start(o)).toMatchObject({ type: "booted" });
    await ticks(f, 150, watch);
    const l = f.leader();
    if (l !== 0) expect(guesses(f, "alice")[l - 1]).toBeGreaterThanOrEqual(2);
    expect(l).toBe(0);

    // The full log returns: the fleet heals and every member counts both guesses.
    expect(await f.start(leader)).toMatchObject({ type: "booted" });
    await ticks(f, 150, watch);
    expect(f.leader()).not.toBe(0);
    await ticks(f, 10, watch);
    for (const g of guesses(f, "alice")) expect(g).toBe(2);
    expect(f.node(x).core!.inspect().recovering).toBe(false);
    expect(watch.violations).toEqual([]);
  }, 120_000);
});
