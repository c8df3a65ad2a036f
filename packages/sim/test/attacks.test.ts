/**
 * The vault operator's attacks on the guess limit of issue 10, against the real HSM cores of an
 * in-process fleet (SimFleet): 3 nodes, a limit of 3 guesses. The operator uses only its own powers:
 * it copies and restores host storage, holds back, delivers late or replays any peer message it
 * recorded, withholds the confirmation of host writes, and crashes and restarts HSMs. Every step is
 * written down; nothing is random.
 *
 * Each test states the guarantee that must hold whatever the operator does:
 * - the guess limit: at most 3 KE2s answered for alice (each is a guess), and once the fleet said her
 *   record is destroyed, no KE2 and no key for her again;
 * - no two nodes ever commit different entries at one index, and the other safety invariants
 *   (src/safety.ts) hold after every action.
 *
 * Schedules pick peer messages by sender, receiver and order; the fleet's debug labels (what each
 * encrypted message is, read inside this process) only make the selection readable: the operator
 * gets the same from sizes and timing.
 */
import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { fromBase64Url } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { type PeerPacket, Safety, SimFleet, type Stored } from "../src/index.js";
import { AttackUser, RIGHT, WRONG, wait } from "./attack-user.js";

const LIMIT = 3;

async function fleetOf(seed: number, snapshotEvery = 2000) {
  const f = await SimFleet.create({
    nodes: 3,
    guessLimit: LIMIT,
    seed,
    recordPerLink: 100_000,
    core: { snapshotEvery, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 100 },
  });
  const safety = new Safety(f, { guessLimit: LIMIT });
  const leader = f.leader();
  const [b, c] = [1, 2, 3].filter((i) => i !== leader) as [number, number];
  return { f, safety, leader, b, c, alice: new AttackUser(f, "alice", LIMIT) };
}

function storageTip(s: Stored): number {
  return s.entries.at(-1)?.index ?? s.snapshot?.index ?? 0;
}

/** Proposals the operator can cause at will: register-start requests (one log entry each). */
async function filler(f: SimFleet, via: number, n: number) {
  await opaque.ready;
  const out = [];
  for (let k = 0; k < n; k++) {
    const start = opaque.client.startRegistration({ password: "filler" });
    const sealed = await sealRequest(
      f.vaultPublicKey(),
      `bob${k % 7}`,
      { op: "register-start", registrationRequest: fromBase64Url(start.registrationRequest) },
      f.time,
      nodeHpkeSealer,
    );
    out.push(f.request(via, sealed.envelope));
  }
  return out;
}

/** What the test asserts at the end, with the story of the run in the message. */
function expectSafe(safety: Safety, alice: AttackUser, story: string[]) {
  const problems = [...alice.violations, ...safety.violations];
  expect(problems, `${story.join("\n")}\n${alice.log.join("\n")}`).toEqual([]);
}

describe("issue 10 attacks: the guess limit holds whatever the operator does", () => {
  it("A1: a restored old disk, replayed old appends of the same term and a restart do not forget guesses", async () => {
    const { f, safety, leader: L, b: B, c: C, alice } = await fleetOf(21);
    const story: string[] = [`leader ${L}, follower B=${B}, follower C=${C}`];
    expect(await alice.register(L)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    const oldB = f.node(B).copyStorage();
    story.push(`B's old disk ends at ${storageTip(oldB)}`);
    // Genuine entries after the old disk: L's appends to B that carry them are recorded.
    const mark = f.sent.at(-1)?.id ?? 0;
    expect(await new AttackUser(f, "bob", LIMIT).register(L)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    const bobAppends = f.sentOn(L, B).filter((p) => p.id > mark);
    // C is cut off; alice's PIN is guessed until her record is destroyed (committed on L and B).
    f.blocked = (from, to) => from === C || to === C;
    for (let g = 0; g < LIMIT; g++) expect(await alice.guess(L, WRONG)).toBe("wrong");
    expect(await alice.start(L, WRONG)).toBe(null); // no record: destroyed
    story.push(`B's NVRAM tip after the guesses: ${f.node(B).nvram()!.tip.index}`);
    // B's old disk back; B boots recovering. The host keeps L's live messages from B.
    f.blocked = (from, to) => from === C || to === C || (from === L && to === B) || (from === B && to === L);
    const b1 = await f.restoreAndRestart(B, oldB);
    story.push(
      `B restarted on its old disk: ${b1.type} ${b1.type === "booted" ? `recovering=${b1.recovering}` : ""}`,
    );
    // Replay L's old appends (same term) that carried bob's entries: B stores genuine entries below
    // the tip it had acknowledged.
    for (const p of bobAppends) await f.deliver(p, true);
    await f.settle(10);
    story.push(
      `after the replay B's storage ends at ${storageTip(f.node(B).stored)}, NVRAM tip ${f.node(B).nvram()!.tip.index}`,
    );
    // Restart B again; then L goes away and B and C are the fleet.
    f.crash(B);
    const b2 = await f.start(B);
    story.push(`B restarted: ${b2.type} ${b2.type === "booted" ? `recovering=${b2.recovering}` : ""}`);
    f.crash(L);
    f.blocked = () => false;
    const l2 = await f.tryWaitForLeader(200);
    story.push(`leader among B and C: ${l2 === 0 ? "none" : l2}`);
    // The attacker goes on guessing, then tries the right PIN.
    const via = l2 === 0 ? B : l2;
    story.push(`right PIN: ${await alice.guess(via, RIGHT, 60)}`);
    for (let g = 0; g < LIMIT; g++) story.push(`wrong guess: ${await alice.guess(via, WRONG, 60)}`);
    expectSafe(safety, alice, story);
  });

  it("A2: a restored old disk and only the leader's first genuine append (256 entries) make a voter that forgot the guesses", async () => {
    const { f, safety, leader: L, b: B, c: C, alice } = await fleetOf(22);
    const story: string[] = [`leader ${L}, follower B=${B}, follower C=${C}`];
    expect(await alice.register(L)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    const oldB = f.node(B).copyStorage();
    // More entries than one append carries (256), all committed everywhere.
    const fill = await filler(f, L, 300);
    for (let t = 0; t < 20; t++) await f.tick();
    const filled = await Promise.all(fill.map((p) => wait(f, p, 10)));
    expect(filled.every((r) => r?.ok === true)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    story.push(
      `B's old disk ends at ${storageTip(oldB)}; the log now ends at ${storageTip(f.node(L).stored)}`,
    );
    f.blocked = (from, to) => from === C || to === C;
    for (let g = 0; g < LIMIT; g++) expect(await alice.guess(L, WRONG)).toBe("wrong");
    expect(await alice.start(L, WRONG)).toBe(null);
    story.push(`B's NVRAM tip after the guesses: ${f.node(B).nvram()!.tip.index}`);
    // B's old disk back; the host holds every message from L to B and lets through, one at a time,
    // only until B has stored something: L's first append after B's rejection.
    f.route = (p) => (p.from === L && p.to === B ? "hold" : "deliver");
    const b1 = await f.restoreAndRestart(B, oldB);
    story.push(
      `B restarted on its old disk: ${b1.type} ${b1.type === "booted" ? `recovering=${b1.recovering}` : ""}`,
    );
    const before = storageTip(f.node(B).stored);
    for (let k = 0; k < 40 && storageTip(f.node(B).stored) === before; k++) {
      if (f.held.length === 0) await f.tick();
      else await f.release((p) => p.from === L && p.to === B, 1);
      await f.settle(5);
    }
    f.discard((p) => p.from === L && p.to === B);
    story.push(
      `B's storage now ends at ${storageTip(f.node(B).stored)}, NVRAM tip ${f.node(B).nvram()!.tip.index}`,
    );
    f.crash(B);
    const b2 = await f.start(B);
    story.push(`B restarted: ${b2.type} ${b2.type === "booted" ? `recovering=${b2.recovering}` : ""}`);
    f.crash(L);
    f.route = null;
    f.blocked = () => false;
    const l2 = await f.tryWaitForLeader(200);
    story.push(`leader among B and C: ${l2 === 0 ? "none" : l2}`);
    const via = l2 === 0 ? B : l2;
    story.push(`right PIN: ${await alice.guess(via, RIGHT, 60)}`);
    for (let g = 0; g < LIMIT; g++) story.push(`wrong guess: ${await alice.guess(via, WRONG, 60)}`);
    expectSafe(safety, alice, story);
  });

  it("B: a stale rejection delivered late does not make a follower drop entries it acknowledged", async () => {
    const SNAP = 16;
    const { f, safety, leader: L, b: F, c: C, alice } = await fleetOf(23, SNAP);
    const story: string[] = [`leader ${L}, follower F=${F}, follower C=${C}, snapshot every ${SNAP}`];
    expect(await alice.register(L)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    f.blocked = (from, to) => from === C || to === C;
    for (let g = 0; g < LIMIT - 1; g++) expect(await alice.guess(L, WRONG)).toBe("wrong");
    for (let t = 0; t < 4; t++) await f.tick();
    const k0 = storageTip(f.node(F).stored);
    story.push(
      `F's log ends at ${k0}; the leader has no snapshot yet: ${f.node(L).stored.snapshot === null}`,
    );
    // 1. A stale rejection: L's heartbeat reaches F before the entry it follows. F's answer is held.
    const LF = (p: PeerPacket) => p.from === L && p.to === F;
    const FL = (p: PeerPacket) => p.from === F && p.to === L;
    f.route = (p) => (LF(p) || FL(p) ? "hold" : "deliver");
    const pending = await filler(f, L, 1);
    await f.settle(5);
    for (let t = 0; t < 6 && !f.held.some((p) => LF(p) && p.msg?.type === "app" && p.msg.prevIndex > k0); t++)
      await f.tick([L]);
    const heartbeat = f.held.find((p) => LF(p) && p.msg?.type === "app" && p.msg.prevIndex > k0);
    expect(heartbeat, "a heartbeat after the new entry").toBeDefined();
    await f.release((p) => p === heartbeat);
    const stale = f.held.find((p) => FL(p) && p.msg?.type === "app-resp" && !p.msg.success);
    expect(stale, "F's rejection of the heartbeat").toBeDefined();
    story.push(
      `held: ${f.held.length} messages; the stale rejection says ${stale!.msg?.type === "app-resp" ? stale!.msg.index : "?"}`,
    );
    // 2. F gets the entry and everything after it; its acknowledgements reach L, the rejection not.
    f.route = (p) => (FL(p) ? "hold" : "deliver");
    await f.release(LF);
    await f.release((p) => FL(p) && p !== stale);
    // Entries up to the snapshot interval, then alice's last guess after it, in separate appends.
    const last = () => f.node(L).core!.inspect().lastIndex;
    pending.push(...(await filler(f, L, Math.max(0, SNAP - last()))));
    await f.settle(5);
    await f.tick([L]);
    await f.tick([L]);
    await f.settle(5);
    story.push(`L's log ends at ${last()} (F: ${storageTip(f.node(F).stored)})`);
    const guess = alice.start(L, WRONG, "manual");
    await f.settle(5);
    await f.tick([L]);
    await f.tick([L]);
    await f.settle(5);
    story.push(`L's log ends at ${last()} (F: ${storageTip(f.node(F).stored)})`);
    // 3. F's acknowledgements in order: L commits past the snapshot interval, snapshots, and
    // answers alice's guess. No heartbeat reaches F meanwhile, so F does not know the commit index.
    f.route = (p) => (FL(p) || LF(p) ? "hold" : "deliver");
    await f.release((p) => FL(p) && p !== stale);
    await f.settle(5);
    story.push(
      `L committed ${f.node(L).core!.inspect().commitIndex}, snapshot at ${f.node(L).stored.snapshot?.index ?? "none"}`,
    );
    alice.stopWaiting();
    expect(await guess, "alice's third guess was answered").not.toBe(null);
    // 4. The stale rejection, then whatever L sends F because of it.
    f.discard(LF);
    await f.release((p) => p === stale);
    await f.settle(5);
    story.push(
      `L sends F: ${f.held
        .filter(LF)
        .map((p) => p.msg?.type)
        .join(", ")}`,
    );
    await f.release(LF);
    await f.settle(10);
    story.push(
      `F's storage now ends at ${storageTip(f.node(F).stored)}, NVRAM tip ${f.node(F).nvram()!.tip.index}`,
    );
    // 5. L crashes; F and C are the fleet.
    f.crash(L);
    f.route = null;
    f.blocked = () => false;
    const l2 = await f.tryWaitForLeader(200);
    story.push(`leader among F and C: ${l2 === 0 ? "none" : l2}`);
    const via = l2 === 0 ? F : l2;
    story.push(`right PIN: ${await alice.guess(via, RIGHT, 60)}`);
    story.push(`wrong guess: ${await alice.guess(via, WRONG, 60)}`);
    expectSafe(safety, alice, story);
  });

  it("C: entries stored but never confirmed are not acknowledged after a restart", async () => {
    const { f, safety, leader: L, b: F, c: C, alice } = await fleetOf(24);
    const story: string[] = [`leader ${L}, follower F=${F}, follower C=${C}`];
    expect(await alice.register(L)).toBe(true);
    for (let t = 0; t < 4; t++) await f.tick();
    f.blocked = (from, to) => from === C || to === C;
    for (let g = 0; g < LIMIT - 1; g++) expect(await alice.guess(L, WRONG)).toBe("wrong");
    for (let t = 0; t < 4; t++) await f.tick();
    const oldF = f.node(F).copyStorage();
    story.push(`F's storage ends at ${storageTip(oldF)}, NVRAM tip ${f.node(F).nvram()!.tip.index}`);
    // F's host stores alice's third guess but never confirms it; then restarts F's HSM.
    f.node(F).ackPersist = false;
    const guess = alice.start(L, WRONG, "manual");
    for (let t = 0; t < 4; t++) await f.tick();
    story.push(
      `F's storage ends at ${storageTip(f.node(F).stored)} (unconfirmed), NVRAM tip ${f.node(F).nvram()!.tip.index}`,
    );
    f.crash(F);
    f.node(F).ackPersist = false;
    const b1 = await f.start(F);
    story.push(`F restarted: ${b1.type} ${b1.type === "booted" ? `recovering=${b1.recovering}` : ""}`);
    for (let t = 0; t < 6; t++) await f.tick();
    story.push(`L committed ${f.node(L).core!.inspect().commitIndex}`);
    alice.stopWaiting();
    story.push(`alice's third guess answered: ${(await guess) !== null}`);
    // The host puts back the copy that ends before the guess: it reaches F's NVRAM tip.
    f.node(F).ackPersist = true;
    const b2 = await f.restoreAndRestart(F, oldF);
    story.push(
      `F restarted on the copy: ${b2.type} ${b2.type === "booted" ? `recovering=${b2.recovering}` : ""}`,
    );
    f.crash(L);
    f.blocked = () => false;
    const l2 = await f.tryWaitForLeader(200);
    story.push(`leader among F and C: ${l2 === 0 ? "none" : l2}`);
    const via = l2 === 0 ? F : l2;
    story.push(`right PIN: ${await alice.guess(via, RIGHT, 60)}`);
    story.push(`wrong guess: ${await alice.guess(via, WRONG, 60)}`);
    expectSafe(safety, alice, story);
  });
});
