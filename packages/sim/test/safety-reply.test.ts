/**
 * Invariant 5 of the simulator's Safety checker (src/safety.ts): a client reply that is the answer
 * of a log entry leaves an HSM only once that entry is committed. A leader that answered before
 * its guess entry committed (a lease, say) would hand out KE2s for guesses that a leader change can
 * drop; before this invariant the simulator noticed that only when the history came out
 * non-linearizable (a few seeds in a hundred). Here the checker is shown such a reply directly.
 */
import { decodeRaftEntry } from "@bkv/hsm-core";
import { describe, expect, it } from "vitest";
import { Safety, SimFleet } from "../src/index.js";
import { AttackUser, WRONG } from "./attack-user.js";

interface RaftView {
  commitIndex: number;
  lastIndex(): number;
  entry(i: number): { bytes: Uint8Array } | undefined;
}
const raftOf = (f: SimFleet, i: number) => (f.node(i).core as unknown as { raft: RaftView }).raft;

describe("Safety: no client reply before its entry commits", () => {
  it("flags a reply that is the answer of an uncommitted entry, and not once the entry commits", async () => {
    const f = await SimFleet.create({
      nodes: 3,
      seed: 901,
      guessLimit: 3,
      startTime: 1_800_000_000_000,
      core: { electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60, snapshotEvery: 1000 },
    });
    const safety = new Safety(f, { guessLimit: 3 });
    const leader = await f.waitForLeader();
    const u = new AttackUser(f, "grace", 3);
    expect(await u.register(leader)).toBe(true);
    // The leader's appends are held: its guess entry stays uncommitted.
    f.route = (p) => (p.from === leader && p.msg?.type === "app" ? "hold" : "deliver");
    const pending = u.start(leader, WRONG, "manual");
    await f.settle(5);
    const raft = raftOf(f, leader);
    const last = raft.lastIndex();
    expect(raft.commitIndex).toBeLessThan(last);
    const answer = decodeRaftEntry(raft.entry(last)!.bytes).answer;
    expect(answer).toBeDefined();
    const forge = () => {
      for (const w of f.onReply)
        w(f.node(leader), { type: "reply", tag: 0, ok: true, envelope: answer!.reply });
    };
    // The checker is handed the reply the leader would send now (the core itself waits).
    forge();
    expect(safety.violations.some((v) => v.includes(`answer of entry ${last}`))).toBe(true);

    // Once the entry commits, the real reply leaves and is no violation.
    const before = safety.violations.length;
    f.route = null;
    await f.release(() => true);
    for (let i = 0; i < 10; i++) await f.tick();
    expect(raftOf(f, leader).commitIndex).toBeGreaterThanOrEqual(last);
    u.stopWaiting();
    expect(await pending).not.toBeNull();
    forge();
    expect(safety.violations.length).toBe(before);
  });
});
