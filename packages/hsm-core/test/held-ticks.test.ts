/**
 * Ticks the host holds back (the Wake frame, and Tick frames carrying several ticks): the HSM names
 * the tick by which it next has something to do, and ticks delivered in one frame act as one late
 * tick. The host is the adversary and controls the clock anyway; these tests check that a Tick
 * frame of many ticks gives it no more than a single late tick would (one heartbeat, one campaign),
 * and that a malformed Tick frame is refused and changes nothing.
 */
import type { HsmCore } from "@bkv/hsm-core";
import { SimFleet as Fleet, type SimFleet, type SimNode } from "@bkv/sim";
import { encodeHostToHsm, type HsmToHost } from "@bkv/wire";
import { describe, expect, it } from "vitest";

const ticksOf = (core: HsmCore) => (core as unknown as { ticks: number }).ticks;
const wakes = (n: SimNode) =>
  n.frames.filter((f): f is HsmToHost & { type: "wake" } => f.type === "wake").map((f) => f.tick);
const lastWake = (n: SimNode) => {
  const w = wakes(n);
  if (w.length === 0) throw new Error(`node ${n.id} sent no wake frame`);
  return w[w.length - 1]!;
};

/** Every peer message the fleet's HSMs emit from now on: sender, receiver, type. */
function watchSent(fleet: SimFleet): { from: number; to: number; type: string }[] {
  const seen: { from: number; to: number; type: string }[] = [];
  fleet.onPacket.push((n, p) => {
    if (p.msg !== undefined) seen.push({ from: n.id, to: p.to, type: p.msg.type });
  });
  return seen;
}

async function fleetOf3(): Promise<{ fleet: SimFleet; leader: number; followers: number[] }> {
  const fleet = await Fleet.create({ nodes: 3, guessLimit: 3 });
  const leader = await fleet.waitForLeader();
  for (let i = 0; i < 5; i++) await fleet.tick();
  return { fleet, leader, followers: [1, 2, 3].filter((x) => x !== leader) };
}

describe("held-back ticks", () => {
  it("a member names its next Wake tick: the leader its next heartbeat, a follower its election timeout", async () => {
    const { fleet, leader, followers } = await fleetOf3();
    const l = fleet.node(leader);
    expect(lastWake(l) - ticksOf(l.core!)).toBeGreaterThanOrEqual(1);
    expect(lastWake(l) - ticksOf(l.core!)).toBeLessThanOrEqual(2); // heartbeatTicks
    for (const id of followers) {
      const f = fleet.node(id);
      const ahead = lastWake(f) - ticksOf(f.core!);
      expect(ahead).toBeGreaterThanOrEqual(1);
      expect(ahead).toBeLessThanOrEqual(20); // at most twice electionTicks
    }
  });

  it("a follower held to its Wake tick does nothing before it, and campaigns once when the ticks arrive in one frame", async () => {
    const { fleet, leader, followers } = await fleetOf3();
    const f = fleet.node(followers[0]!);
    // The host cuts the follower off from its leader: no heartbeat resets its timeout.
    fleet.blocked = (from, to) => from === leader || to === leader;
    const before = ticksOf(f.core!);
    const wake = lastWake(f);
    const sent = watchSent(fleet);
    if (wake - before > 1) await fleet.deliverFrame(f, { type: "tick", ticks: wake - before - 1 });
    expect(sent.filter((m) => m.from === f.id)).toEqual([]);
    expect(f.core!.inspect().role).toBe("follower");
    // The rest, and a day more, in one frame: one pre-vote to each peer, as for one late tick.
    await fleet.deliverFrame(f, { type: "tick", ticks: 1 + 24 * 3600 * 20 });
    const votes = sent.filter((m) => m.from === f.id && m.type === "vote");
    expect(votes.map((m) => m.to).sort()).toEqual([1, 2, 3].filter((x) => x !== f.id));
    expect(f.core!.inspect().role).toBe("pre-candidate");
    // And it names a new Wake tick past the ticks it has.
    expect(lastWake(f)).toBeGreaterThan(ticksOf(f.core!));
  });

  it("a leader given a million ticks in one frame sends one heartbeat per follower, not one per two ticks", async () => {
    const { fleet, leader, followers } = await fleetOf3();
    const l = fleet.node(leader);
    const term = l.core!.inspect().term;
    const sent = watchSent(fleet);
    await fleet.deliverFrame(l, { type: "tick", ticks: 1_000_000 });
    const appends = sent.filter((m) => m.from === leader && m.type === "app");
    expect(appends.map((m) => m.to).sort()).toEqual(followers);
    // Its followers answered within the last election timeout: it still leads, in the same term.
    expect(l.core!.inspect().role).toBe("leader");
    expect(l.core!.inspect().term).toBe(term);
  });

  it("a Tick frame of 0 ticks, or of more than a frame may carry, is refused and changes nothing", async () => {
    const { fleet, followers } = await fleetOf3();
    const f = fleet.node(followers[0]!);
    for (const ticks of [0, 2 ** 22 + 1, 2 ** 32 - 1]) {
      const bytes = encodeHostToHsm({ type: "tick", ticks });
      const rejected = f.core!.counters.framesRejected;
      const t = ticksOf(f.core!);
      const frames = f.frames.length;
      await f.core!.receive(bytes);
      expect(f.core!.counters.framesRejected).toBe(rejected + 1);
      expect(ticksOf(f.core!)).toBe(t);
      expect(f.frames.length).toBe(frames);
    }
  });
});
