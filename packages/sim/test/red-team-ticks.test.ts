/**
 * Red team of the held-back ticks change: the operator (DESIGN.md §2) runs the hosts, so it feeds
 * each HSM its ticks. Since a Tick frame carries a count (1..MAX_TICKS_PER_FRAME), a host can hold
 * ticks back and deliver them bunched, replay a Tick frame, or hurry its HSM's clock by a whole
 * frame at once; and Raft followers get no heartbeat in a round after an append that carried the
 * current commit. Ticks drive only Raft (elections, heartbeats, CheckQuorum) and the expiry of
 * forwarded requests; there are no leases and the guess limit is counted, not timed. Every test
 * asserts the guarantee HOLDS, so it fails when the attack breaks it; the Safety checker
 * (src/safety.ts) watches every action, NVRAM write and peer message in every test.
 */
import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import type { HsmCore } from "@bkv/hsm-core";
import { bytesEqual, encodeHostToHsm, encodeHsmToHost, fromBase64Url, MAX_TICKS_PER_FRAME } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { type PeerPacket, Prng, Safety, SimFleet, type Stored } from "../src/index.js";
import { AttackUser, RIGHT, WRONG, wait } from "./attack-user.js";
import { CommitWatch, guessesUsed } from "./sim-client.js";

const START = 1_800_000_000_000;
const DAY = 24 * 3600 * 20; // 50 ms ticks
const CORE = { electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60, snapshotEvery: 1000 };

/** The debug view of a core's Raft state the tests judge by (the operator cannot read it). */
interface RaftView {
  role: string;
  term: number;
  commitIndex: number;
  lastIndex(): number;
  hashAt(i: number): Uint8Array | undefined;
  matchIndexes(): { node: number; match: number }[];
}
const raftOf = (core: HsmCore) => (core as unknown as { raft: RaftView }).raft;
const ticksOf = (core: HsmCore) => (core as unknown as { ticks: number }).ticks;

async function fleetOf(nodes: number, seed: number, limit: number) {
  const f = await SimFleet.create({ nodes, seed, guessLimit: limit, startTime: START, core: CORE });
  const safety = new Safety(f, { guessLimit: limit });
  const watch = new CommitWatch(f);
  f.onAction.push(() => watch.check());
  const leader = await f.waitForLeader();
  for (let i = 0; i < 4; i++) await f.tick();
  return { f, safety, watch, leader };
}

function expectSafe(safety: Safety, watch: CommitWatch, ...users: AttackUser[]): void {
  expect(safety.violations).toEqual([]);
  expect(watch.violations).toEqual([]);
  for (const u of users) expect(u.violations, u.log.join("\n")).toEqual([]);
}

/** Tick the fleet until a node other than `not` leads in a term above `term` (bounded). */
async function newLeader(f: SimFleet, not: number, term: number, maxTicks = 300): Promise<number> {
  for (let t = 0; t < maxTicks; t++) {
    for (const n of f.nodes) {
      if (n.id === not || n.core === null) continue;
      const v = n.core.inspect();
      if (v.role === "leader" && v.term > term && v.commitIndex === v.state.index && v.state.term === v.term)
        return n.id;
    }
    await f.tick();
  }
  throw new Error("no new leader emerged");
}

// ---------------------------------------------------------------------------------------------
// (b) A stale leader kept leading. The operator holds every answer the followers send the leader,
// holds the leader's ticks, cuts it off, lets the others elect a new leader, then hands the old one
// the held answers and a million ticks in one frame: its CheckQuorum counts the late answers, so it
// still believes it leads, in the old term, next to the new leader (two leaders). Guesses are sent
// to both. No lease lets the old leader answer anything on its own: a KE2 leaves a leader only once
// its guess entry is committed, and no majority will take entries of the old term.

describe("red team (ticks): a stale leader kept leading by held ticks and late answers", () => {
  it("answers no KE2 while the new leader counts the guesses; at most the limit in all", async () => {
    const LIMIT = 3;
    const { f, safety, watch, leader: l1 } = await fleetOf(3, 801, LIMIT);
    const u = new AttackUser(f, "alice", LIMIT);
    expect(await u.register(l1)).toBe(true);
    for (let i = 0; i < 4; i++) await f.tick();
    const term1 = f.node(l1).core!.inspect().term;

    // The followers' next answers to the leader are held (never delivered yet: fresh, not replays).
    const held: PeerPacket[] = [];
    f.route = (p) => (p.to === l1 && p.msg?.type === "app-resp" ? "hold" : "deliver");
    for (let i = 0; i < 3; i++) await f.tick();
    held.push(...f.held.splice(0));
    expect(held.length).toBeGreaterThan(0);

    // Cut the leader off and hold its clock; the others elect a new leader.
    f.node(l1).holdTicks = true;
    f.route = (p) => (p.from === l1 || p.to === l1 ? "drop" : "deliver");
    const l2 = await newLeader(f, l1, term1);
    const term2 = f.node(l2).core!.inspect().term;
    expect(term2).toBeGreaterThan(term1);

    // The late answers, then a million ticks in one frame: CheckQuorum passes on them.
    for (const p of held) await f.deliver(p, true);
    await f.releaseTicks(l1, 1_000_000);
    f.node(l1).holdTicks = true;
    const stale = f.node(l1).core!.inspect();
    expect(stale.role).toBe("leader");
    expect(stale.term).toBe(term1);

    // Guesses at both leaders: three KE1s at the stale one (waiting on it), whole logins at the new.
    const atStale = [
      u.start(l1, WRONG, "manual"),
      u.start(l1, WRONG, "manual"),
      u.start(l1, RIGHT, "manual"),
    ];
    await f.settle(5);
    const outcomes: string[] = [];
    for (let i = 0; i < LIMIT + 1; i++) outcomes.push(await u.guess(l2, WRONG, 100));
    expect(outcomes).toEqual(["wrong", "wrong", "wrong", "no-record"]);
    // More time for the stale leader, bunched again: it steps down (no answers since its last check).
    await f.releaseTicks(l1, DAY);
    expect(f.node(l1).core!.inspect().role).not.toBe("leader");

    // Heal: the old leader learns the new term and drops its uncommitted guesses.
    f.route = null;
    for (let i = 0; i < 30; i++) await f.tick();
    u.stopWaiting();
    expect(await Promise.all(atStale)).toEqual([null, null, null]);
    expect(u.log.filter((l) => l.includes(`via node ${l1}`))).toEqual([]);
    expect(guessesUsed(f, "alice")).toEqual([-1, -1, -1]);
    expectSafe(safety, watch, u);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// (a) An election storm made of bunched ticks: before every login the operator hands every member
// a day of ticks in one frame (in a changing order), so leaders step down, PreVote is granted and
// members campaign, while the attacker guesses through a different member each time. The guess
// limit is counted in the log, not in time: at most `limit` KE2s, then the record is gone.

describe("red team (ticks): an election storm of bunched ticks while the attacker guesses", () => {
  it("at most the limit of KE2s, none after destroy, the same count on every member", async () => {
    const LIMIT = 4;
    const { f, safety, watch, leader } = await fleetOf(5, 802, LIMIT);
    const u = new AttackUser(f, "bob", LIMIT);
    expect(await u.register(leader)).toBe(true);
    const term0 = f.node(leader).core!.inspect().term;
    const rng = new Prng(802);
    const outcomes: string[] = [];
    for (let round = 0; round < 12; round++) {
      const order = [1, 2, 3, 4, 5].sort(() => rng.next() - 0.5);
      for (const id of order) await f.releaseTicks(id, rng.chance(0.3) ? MAX_TICKS_PER_FRAME : DAY);
      outcomes.push(await u.guess(1 + (round % 5), WRONG, 150));
    }
    for (let i = 0; i < 40; i++) await f.tick();
    // The storm changed leaders, and guesses went through until the record was destroyed.
    expect(Math.max(...f.nodes.map((n) => n.core!.inspect().term))).toBeGreaterThan(term0);
    expect(outcomes.filter((o) => o === "wrong").length).toBeLessThanOrEqual(LIMIT);
    expect(outcomes).toContain("no-record");
    expect(u.log.length).toBeGreaterThan(0);
    expect(u.guesses).toBeLessThanOrEqual(LIMIT);
    expect(guessesUsed(f, "bob")).toEqual([-1, -1, -1, -1, -1]);
    expectSafe(safety, watch, u);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// (c) Frames out of place: a Wake frame (HSM to host) played back to the HSM, Tick frames with
// trailing or missing bytes, and a Tick frame replayed. Tick frames carry a count, not a number the
// HSM could take out of order: a replayed one is only more time, which the host controls anyway.

describe("red team (ticks): Wake and Tick frames out of place", () => {
  it("a Wake frame sent to the HSM, and Tick frames with trailing or missing bytes, are refused and change nothing", async () => {
    const { f, safety, watch, leader } = await fleetOf(3, 803, 3);
    const follower = f.node(leader === 1 ? 2 : 1);
    const core = follower.core!;
    const wake = follower.frames.filter((x) => x.type === "wake").at(-1);
    expect(wake).toBeDefined();
    const tick = encodeHostToHsm({ type: "tick", ticks: 5 });
    const bad = [
      encodeHsmToHost({ type: "wake", tick: (wake as { tick: number }).tick }),
      encodeHsmToHost({ type: "wake", tick: 2 ** 40 }),
      new Uint8Array([...tick, 0]),
      tick.subarray(0, tick.length - 1),
      tick.subarray(0, 1),
    ];
    for (const bytes of bad) {
      const rejected = core.counters.framesRejected;
      const t = ticksOf(core);
      const frames = follower.frames.length;
      const before = core.inspect();
      await core.receive(bytes);
      expect(core.counters.framesRejected).toBe(rejected + 1);
      expect(ticksOf(core)).toBe(t);
      expect(follower.frames.length).toBe(frames);
      const after = core.inspect();
      expect([after.role, after.term, after.commitIndex]).toEqual([
        before.role,
        before.term,
        before.commitIndex,
      ]);
    }
    expectSafe(safety, watch);
  });

  it("one Tick frame replayed a thousand times to a follower is a thousand frames of time: one campaign at a time, and the fleet keeps one leader per term", async () => {
    const { f, safety, watch, leader } = await fleetOf(3, 804, 3);
    const fid = leader === 1 ? 2 : 1;
    const frame = encodeHostToHsm({ type: "tick", ticks: MAX_TICKS_PER_FRAME });
    const votes: number[] = [];
    f.onPacket.push((n, p) => {
      if (n.id === fid && p.msg?.type === "vote") votes.push(p.msg.term);
    });
    const t0 = ticksOf(f.node(fid).core!);
    for (let i = 0; i < 1000; i++) await f.node(fid).core!.receive(frame);
    await f.settle(5);
    expect(ticksOf(f.node(fid).core!)).toBe(t0 + 1000 * MAX_TICKS_PER_FRAME);
    // At most one (pre-)vote to each of its two peers per frame, however many ticks it carries.
    expect(votes.length).toBeGreaterThan(0);
    expect(votes.length).toBeLessThanOrEqual(2 * 1000);
    for (let i = 0; i < 40; i++) await f.tick();
    expect(f.leader()).not.toBe(0);
    const u = new AttackUser(f, "carol", 3);
    expect(await u.register(f.leader())).toBe(true);
    expectSafe(safety, watch, u);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// (d) Everything at once: the guesses are committed on every member; the operator restores the old
// disks (from before the guesses) of two of three members, restarts them, replays every peer
// message it recorded, and bunches a full frame of ticks into each, with the third member down.
// The two are recovering (NVRAM holds the tip they acknowledged): neither campaigns nor serves. Once
// the third member returns, the guesses used are still counted.

describe("red team (ticks): old disks, replayed frames, restarts, then bunched ticks", () => {
  it("the rolled-back majority answers nothing, and the guesses used stay counted when the full log returns", async () => {
    const LIMIT = 3;
    const { f, safety, watch, leader } = await fleetOf(3, 805, LIMIT);
    const u = new AttackUser(f, "dave", LIMIT);
    expect(await u.register(leader)).toBe(true);
    for (let i = 0; i < 6; i++) await f.tick();
    const disks = new Map<number, Stored>(f.nodes.map((n) => [n.id, n.copyStorage()]));
    expect(await u.guess(leader, WRONG)).toBe("wrong");
    expect(await u.guess(leader, WRONG)).toBe("wrong");
    for (let i = 0; i < 6; i++) await f.tick();
    expect(guessesUsed(f, "dave")).toEqual([2, 2, 2]);

    const keep = [1, 2, 3].find((i) => i !== leader)!;
    const rolled = [1, 2, 3].filter((i) => i !== keep);
    f.crash(keep);
    for (const i of rolled) {
      const booted = await f.restoreAndRestart(i, disks.get(i)!);
      expect(booted.type).toBe("booted");
    }
    for (const p of f.sent) await f.deliver(p, true);
    for (const i of rolled) await f.releaseTicks(i, MAX_TICKS_PER_FRAME);
    for (let i = 0; i < 60; i++) {
      await f.tick();
      if (i % 20 === 0) for (const j of rolled) await f.releaseTicks(j, MAX_TICKS_PER_FRAME);
    }
    for (const i of rolled) {
      const v = f.node(i).core!.inspect();
      expect(v.recovering).toBe(true);
      expect(v.role).not.toBe("leader");
    }
    // The attacker tries both: nothing answers (no KE2 from the old disks' zero count).
    for (const i of rolled) expect(await u.start(i, WRONG, 30)).toBeNull();

    // The member with the full log returns: one guess is left.
    const back = await f.start(keep);
    expect(back.type).toBe("booted");
    const l = await f.waitForLeader();
    expect(await u.guess(l, WRONG)).toBe("wrong");
    expect(await u.guess(l, RIGHT)).toBe("no-record");
    expect(u.guesses).toBe(LIMIT);
    for (let i = 0; i < 20; i++) await f.tick();
    expect(guessesUsed(f, "dave")).toEqual([-1, -1, -1]);
    expectSafe(safety, watch, u);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// The heartbeat skip. A round skips a follower sent an append carrying the current commit since the
// last round. The operator drops, holds, reorders and duplicates appends and their answers (most
// of all the appends the skip counts on) while entries are proposed, and bunches the leader's
// ticks. After every step: the leader's match index for a follower is never past that follower's
// log, and the entry there is the leader's (the leader never believes a follower holds what it
// lacks). Once the network delivers again, every follower reaches the leader's commit index within
// a few heartbeat rounds (no follower misses a commit for good).

describe("red team (ticks): the heartbeat skip under dropped, held, reordered and duplicated appends", () => {
  it("match indexes never run ahead of a follower's log, and every follower catches up once messages flow", async () => {
    const { f, safety, watch } = await fleetOf(3, 806, 3);
    const rng = new Prng(806);
    const violations: string[] = [];
    const checkMatch = () => {
      for (const n of f.nodes) {
        if (n.core === null) continue;
        const r = raftOf(n.core);
        if (r.role !== "leader") continue;
        for (const { node, match } of r.matchIndexes()) {
          if (match === 0) continue;
          const fr = raftOf(f.node(node).core!);
          // Within one term a follower never drops what it acknowledged; a later term may.
          if (fr.term !== r.term) continue;
          const theirs = fr.hashAt(match);
          const mine = r.hashAt(match);
          if (
            fr.lastIndex() < match ||
            theirs === undefined ||
            mine === undefined ||
            !bytesEqual(theirs, mine)
          )
            violations.push(
              `leader ${n.id} term ${r.term} has match ${match} for ${node}, which holds ${fr.lastIndex()}`,
            );
        }
      }
    };
    f.onAction.push(checkMatch);
    const pool: PeerPacket[] = [];
    f.route = (p) => {
      const t = p.msg?.type;
      if (t !== "app" && t !== "app-resp") return "deliver";
      const roll = rng.next();
      if (roll < 0.3) return "drop";
      if (roll < 0.55) {
        pool.push(p);
        return "drop";
      }
      return "deliver";
    };
    await opaque.ready;
    const u = new AttackUser(f, "erin", 3);
    let sent = 0;
    for (let step = 0; step < 250; step++) {
      const roll = rng.next();
      if (roll < 0.25 && sent < 60) {
        // A request that makes a log entry (a register-start), answered or not.
        const start = opaque.client.startRegistration({ password: RIGHT });
        void u.send(
          f.leader() || 1,
          { op: "register-start", registrationRequest: fromBase64Url(start.registrationRequest) },
          "manual",
        );
        sent++;
      } else if (roll < 0.45 && pool.length > 0) {
        // Held messages delivered late, in any order, sometimes twice.
        const p = pool.splice(rng.int(pool.length), 1)[0]!;
        await f.deliver(p, true);
        if (rng.chance(0.3)) await f.deliver(p, true);
      } else if (roll < 0.5) {
        const l = f.leader();
        if (l !== 0) await f.releaseTicks(l, 1 + rng.int(DAY));
      } else {
        await f.tick();
      }
      await f.settle(2);
      checkMatch();
    }
    // The network delivers again (the held messages, late, first).
    f.route = null;
    for (const p of pool.splice(0)) await f.deliver(p, true);
    let caughtUp = -1;
    for (let t = 0; t < 40 && caughtUp < 0; t++) {
      await f.tick();
      const l = f.leader();
      if (l === 0) continue;
      const lr = raftOf(f.node(l).core!);
      if (
        f.nodes.every(
          (n) =>
            raftOf(n.core!).commitIndex === lr.commitIndex && raftOf(n.core!).lastIndex() === lr.lastIndex(),
        )
      )
        caughtUp = t;
    }
    u.stopWaiting();
    expect(violations).toEqual([]);
    expect(caughtUp).toBeGreaterThanOrEqual(0);
    const l = f.leader();
    expect(raftOf(f.node(l).core!).commitIndex).toBeGreaterThan(10);
    expectSafe(safety, watch, u);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// The heartbeat skip after a rollback. A follower's acknowledgement is counted, then the operator
// restores the follower's old disk (without those entries) and restarts it, and drops every append
// to it for a while, in particular the catch-up appends the skip counts on, and bunches the
// leader's ticks. The leader's match index says the follower holds entries it lost: that is what the
// follower's NVRAM still says it acknowledged (it is recovering and votes as if it held them). Once
// appends flow, the follower's rejection moves the leader back, it gets the entries, reaches the
// commit index and leaves recovering: it misses no commit for good.

describe("red team (ticks): the heartbeat skip to a follower rolled back behind what it acknowledged", () => {
  it("catches up and recovers once appends flow, after the operator dropped its catch-up appends", async () => {
    const LIMIT = 5;
    const { f, safety, watch, leader } = await fleetOf(3, 807, LIMIT);
    const u = new AttackUser(f, "frank", LIMIT);
    expect(await u.register(leader)).toBe(true);
    for (let i = 0; i < 6; i++) await f.tick();
    const fid = [1, 2, 3].find((i) => i !== leader)!;
    const disk = f.node(fid).copyStorage();
    expect(await u.guess(leader, WRONG)).toBe("wrong");
    expect(await u.guess(leader, WRONG)).toBe("wrong");
    for (let i = 0; i < 6; i++) await f.tick();
    const match = () =>
      raftOf(f.node(leader).core!)
        .matchIndexes()
        .find((m) => m.node === fid)!.match;
    const acked = match();
    expect(acked).toBe(raftOf(f.node(leader).core!).commitIndex);

    expect((await f.restoreAndRestart(fid, disk)).type).toBe("booted");
    expect(f.node(fid).core!.inspect().recovering).toBe(true);
    expect(raftOf(f.node(fid).core!).lastIndex()).toBeLessThan(acked);
    // Appends to it are dropped for a while; the leader's ticks come bunched; a guess goes through.
    let dropped = 0;
    f.route = (p) => {
      if (p.to === fid && p.msg?.type === "app") {
        dropped++;
        return "drop";
      }
      return "deliver";
    };
    for (let i = 0; i < 20; i++) {
      await f.tick();
      if (i % 5 === 0) await f.releaseTicks(leader, 1 + i * 1000);
    }
    expect(await u.guess(leader, WRONG)).toBe("wrong");
    expect(dropped).toBeGreaterThan(0);
    expect(match()).toBeGreaterThanOrEqual(acked); // never lowered
    expect(f.node(fid).core!.inspect().recovering).toBe(true);

    f.route = null;
    let caughtUp = -1;
    for (let t = 0; t < 20 && caughtUp < 0; t++) {
      await f.tick();
      const fv = f.node(fid).core!.inspect();
      if (!fv.recovering && fv.commitIndex === f.node(leader).core!.inspect().commitIndex) caughtUp = t;
    }
    expect(caughtUp).toBeGreaterThanOrEqual(0);
    expect(guessesUsed(f, "frank")).toEqual([3, 3, 3]);
    expectSafe(safety, watch, u);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// A forward expired by bunched ticks. The operator holds the leader's answer to a follower's
// forward and hands the follower more ticks than a forward may wait, so the follower tells the
// client "unavailable" although the leader committed the guess. The operator then plays the very
// same envelope to the leader and to the other follower, and the held answer to the follower late.
// Exactly once: the same answer each time, one guess counted, nothing from the expired forward.

describe("red team (ticks): a forward expired by bunched ticks while its guess commits", () => {
  it("the same envelope played again gets the first answer; one guess counted", async () => {
    const LIMIT = 3;
    const { f, safety, watch, leader } = await fleetOf(3, 808, LIMIT);
    const u = new AttackUser(f, "heidi", LIMIT);
    expect(await u.register(leader)).toBe(true);
    for (let i = 0; i < 4; i++) await f.tick();
    const [via, other] = [1, 2, 3].filter((i) => i !== leader) as [number, number];
    f.route = (p) => (p.from === leader && p.to === via && p.msg?.type === "fwd-resp" ? "hold" : "deliver");
    await opaque.ready;
    const login = opaque.client.startLogin({ password: WRONG });
    const sealed = await sealRequest(
      f.vaultPublicKey(),
      "heidi",
      { op: "recover-start", ke1: fromBase64Url(login.startLoginRequest) },
      f.time,
      nodeHpkeSealer,
    );
    const viaFollower = f.request(via, sealed.envelope);
    for (let i = 0; i < 6 && f.held.length === 0; i++) await f.tick();
    expect(f.held.length).toBe(1);
    expect(guessesUsed(f, "heidi")[leader - 1]).toBe(1); // committed: the leader answered
    // More ticks than a forward waits (forwardTicks 60), in one frame: the follower gives up.
    await f.releaseTicks(via, 61);
    const gaveUp = await viaFollower;
    expect(gaveUp?.ok).toBe(false);

    // The same envelope to the leader and to the other follower: the first answer, no new guess.
    const again = await wait(f, f.request(leader, sealed.envelope), 50);
    const viaOther = await wait(f, f.request(other, sealed.envelope), 50);
    expect(again?.ok).toBe(true);
    expect(viaOther?.ok).toBe(true);
    const a = again!.ok ? again!.envelope : new Uint8Array(0);
    const b = viaOther!.ok ? viaOther!.envelope : new Uint8Array(0);
    expect(bytesEqual(a, b)).toBe(true);
    expect(await sealed.open(a)).toMatchObject({ ok: "recover-start", guessesRemaining: LIMIT - 1 });
    // The held answer reaches the follower late: its forward is gone, nothing more leaves.
    const replies: number[] = [];
    f.onReply.push((n) => replies.push(n.id));
    f.route = null;
    await f.release(() => true);
    for (let i = 0; i < 6; i++) await f.tick();
    expect(replies).toEqual([]);
    expect(guessesUsed(f, "heidi")).toEqual([1, 1, 1]);
    expectSafe(safety, watch, u);
  }, 60_000);
});

// Forwards held without end. The operator holds every forward a follower sends the leader (so no
// answer comes back) and keeps handing the follower requests: without a bound, the follower's
// table of requests waiting for the leader grows with every one until ticks expire them, and the
// operator decides when ticks come. With one, the requests past it are UNAVAILABLE at once.
describe("red team (ticks): forwards held while requests keep coming", () => {
  it("a follower keeps at most maxForwards waiting; the rest are UNAVAILABLE until answers come", async () => {
    const f = await SimFleet.create({
      nodes: 3,
      seed: 809,
      guessLimit: 3,
      startTime: START,
      core: { ...CORE, maxForwards: 3 },
    });
    const leader = await f.waitForLeader();
    for (let i = 0; i < 4; i++) await f.tick();
    const via = [1, 2, 3].find((i) => i !== leader)!;
    f.route = (p) => (p.from === via && p.msg?.type === "fwd" ? "hold" : "deliver");
    await opaque.ready;
    const envelope = async (user: string) =>
      (
        await sealRequest(
          f.vaultPublicKey(),
          user,
          {
            op: "recover-start",
            ke1: fromBase64Url(opaque.client.startLogin({ password: WRONG }).startLoginRequest),
          },
          f.time,
          nodeHpkeSealer,
        )
      ).envelope;
    const waiting = [];
    for (let i = 0; i < 3; i++) waiting.push(f.request(via, await envelope(`u${i}`)));
    const over = [];
    for (let i = 3; i < 6; i++) over.push(await wait(f, f.request(via, await envelope(`u${i}`)), 3));
    expect(over.map((r) => (r !== null && !r.ok ? r.code : r))).toEqual([
      "UNAVAILABLE",
      "UNAVAILABLE",
      "UNAVAILABLE",
    ]);
    expect(f.held.filter((p) => p.msg?.type === "fwd").length).toBe(3);
    // The held forwards reach the leader and its answers come back: room again.
    f.route = null;
    await f.release(() => true);
    const answered = await Promise.all(waiting.map((p) => wait(f, p, 50)));
    expect(answered.every((r) => r !== null)).toBe(true);
    const next = await wait(f, f.request(via, await envelope("u6")), 50);
    expect(next !== null && !next.ok ? next.message : "").not.toMatch(/too many requests/);
  }, 60_000);
});
