/**
 * Red team, fifth round: attacks by the vault operator (DESIGN.md §2) that combine powers earlier
 * rounds used one or two at a time. Every test asserts the guarantee HOLDS, so a test fails when an
 * attack breaks it. Powers used: holding a client's message, crashes and restarts (boots that rebuild
 * the state from a sealed snapshot), a member kept down until the leader compacted past it (it
 * catches up by InstallSnapshot), its clock and other members' clocks. Never the HSM code, its
 * NVRAM or its keys.
 */

import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { LOGIN_TTL_MS, REQUEST_WINDOW_MS } from "@bkv/hsm-core";
import { bytesEqual, ErrorCode, FinishAction, fromBase64Url, toBase64Url, type VaultResult } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { SimFleet } from "../src/index.js";
import { AttackUser, RIGHT, WRONG, wait } from "./attack-user.js";
import { CommitWatch, guessesUsed, LIGHT } from "./sim-client.js";

const START = 1_800_000_000_000;

type Started = NonNullable<Awaited<ReturnType<AttackUser["start"]>>>;

/** The second round trip of a login the test started earlier (its KE3 held until now). */
async function finish(u: AttackUser, via: number, s: Started): Promise<VaultResult | null> {
  const fin = opaque.client.finishLogin({
    clientLoginState: s.login.clientLoginState,
    loginResponse: toBase64Url(s.ke2.ke2),
    password: s.pin,
    keyStretching: LIGHT,
  });
  return u.send(
    via,
    {
      op: "recover-finish",
      sessionId: s.ke2.sessionId,
      ke3: fin === undefined ? new Uint8Array(0) : fromBase64Url(fin.finishLoginRequest),
      action: FinishAction.Recover,
    },
    150,
  );
}

async function ticks(f: SimFleet, n: number, w: CommitWatch): Promise<void> {
  for (let i = 0; i < n; i++) {
    await f.tick();
    w.check();
  }
}

// ---------------------------------------------------------------------------------------------
// Attack: the login-ok rule (guessesUsed = guessSeq - the held login's number) through the
// snapshot path. The victim's login is counted, its KE3 held; the operator takes KE2s for wrong
// PINs; the leader compacts, every member restarts from its sealed snapshot (the pending login and
// the guess numbers come back from VaultState.decode), and a member that was down catches up by
// InstallSnapshot. Then the victim's KE3 is delivered. If the snapshot lost a pending login's
// number or the record's guess number (or InstallSnapshot dropped them), the success would give
// back the guesses the operator took after the victim's login, or refuse the victim.

describe("red team 5: a held KE3 across compaction, restarts from snapshots and InstallSnapshot", () => {
  it("the victim's late success keeps every guess taken after its login counted, on every member", async () => {
    const LIMIT = 5;
    const f = await SimFleet.create({
      nodes: 3,
      seed: 501,
      guessLimit: LIMIT,
      startTime: START,
      core: { snapshotEvery: 4, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
    });
    const watch = new CommitWatch(f);
    const leader = await f.waitForLeader();
    const victim = new AttackUser(f, "alice", LIMIT);
    const operator = new AttackUser(f, "alice", LIMIT);
    expect(await victim.register(leader)).toBe(true);
    const held = await victim.start(leader, RIGHT);
    expect(held).not.toBeNull();
    await ticks(f, 4, watch);

    // A follower goes down; the operator takes three KE2s for wrong PINs and never finishes them.
    const lagging = [1, 2, 3].find((i) => i !== leader)!;
    const laggingLast = f.node(lagging).core!.inspect().lastIndex;
    f.crash(lagging);
    for (let k = 0; k < 3; k++) expect(await operator.start(leader, WRONG)).not.toBeNull();
    // Enough other traffic that the leader compacts well past the lagging member's log.
    for (let k = 0; k < 6; k++)
      expect(await new AttackUser(f, `filler${k}`, LIMIT).register(leader)).toBe(true);
    await ticks(f, 4, watch);
    for (const g of guessesUsed(f, "alice")) if (g !== null) expect(g).toBe(4);
    const snap = f.node(leader).stored.snapshot;
    expect(snap).not.toBeNull();
    expect(snap!.index).toBeGreaterThan(laggingLast + 1);

    // Every live member restarts: its state comes back from its sealed snapshot.
    const live = [1, 2, 3].filter((i) => i !== lagging);
    for (const i of live) f.crash(i);
    for (const i of live) expect(await f.start(i)).toMatchObject({ type: "booted", recovering: false });
    await f.waitForLeader();
    for (const i of live) expect(f.node(i).core!.inspect().state.records.get("alice")?.guessesUsed).toBe(4);
    // The lagging member returns on its old (but unrolled-back) disk and catches up by snapshot.
    expect(await f.start(lagging)).toMatchObject({ type: "booted", recovering: false });
    await ticks(f, 60, watch);
    expect(f.node(lagging).stored.snapshot?.index ?? 0).toBeGreaterThanOrEqual(snap!.index);
    expect(guessesUsed(f, "alice")).toEqual([4, 4, 4]);

    // The victim's KE3, held all along (its login has not expired: the fleet's clock moved by ticks).
    expect(f.time - START).toBeLessThan(LOGIN_TTL_MS);
    const r = await finish(victim, f.leader(), held!);
    expect(r).toMatchObject({ ok: "recover-finish" });
    await ticks(f, 6, watch);
    // Guesses the operator took after the victim's login still count, on every member.
    expect(guessesUsed(f, "alice")).toEqual([3, 3, 3]);
    // So the operator gets LIMIT - 3 more KE2s, and then the record is gone.
    let more = 0;
    for (let k = 0; k < LIMIT; k++) if ((await operator.start(f.leader(), WRONG)) !== null) more++;
    expect(more).toBe(LIMIT - 3);
    const last = await operator.send(
      f.leader(),
      {
        op: "recover-start",
        ke1: fromBase64Url(opaque.client.startLogin({ password: RIGHT }).startLoginRequest),
      },
      150,
    );
    expect(last).toMatchObject({ error: ErrorCode.NoRecord });
    expect([...victim.violations, ...operator.violations, ...watch.violations]).toEqual([]);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Attack: the replay cache through the snapshot path, on a clock the operator holds back. The
// victim's recover-start is answered; its entry is compacted into a snapshot; every member restarts
// from that snapshot (the core's memory of the highest time it used is gone) with its host clock set
// back by most of the request window, so the request is still inside the window by the HSM clock.
// The operator replays the victim's envelope to every member. If the snapshot lost the request id
// (or its answer), or a restarted member's clock went back behind the log's, the copy would be
// decided again: a second KE2 under the victim's KE1 and a second guess counted.

describe("red team 5: the replay cache across a snapshot and restarts on a clock held back", () => {
  it("a copy of the victim's answered recover-start gets the same answer from every member, and no second guess", async () => {
    const LIMIT = 5;
    const f = await SimFleet.create({
      nodes: 3,
      seed: 502,
      guessLimit: LIMIT,
      startTime: START,
      core: { snapshotEvery: 4, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
    });
    const watch = new CommitWatch(f);
    const leader = await f.waitForLeader();
    const victim = new AttackUser(f, "alice", LIMIT);
    expect(await victim.register(leader)).toBe(true);
    const login = opaque.client.startLogin({ password: RIGHT });
    const sealed = await sealRequest(
      f.vaultPublicKey(),
      "alice",
      { op: "recover-start", ke1: fromBase64Url(login.startLoginRequest) },
      f.time,
      nodeHpkeSealer,
    );
    const first = await wait(f, f.request(leader, sealed.envelope), 150);
    expect(first?.ok).toBe(true);
    const answer = first!.ok ? first!.envelope : new Uint8Array(0);
    expect(await sealed.open(answer)).toMatchObject({ ok: "recover-start" });
    const answeredAt = f.node(leader).core!.inspect().state.index;
    for (let k = 0; k < 6; k++)
      expect(await new AttackUser(f, `filler${k}`, LIMIT).register(leader)).toBe(true);
    await ticks(f, 4, watch);
    expect(guessesUsed(f, "alice")).toEqual([1, 1, 1]);
    // Every member has compacted past the answer: its request id now lives in the snapshot only.
    for (const n of f.nodes) expect(n.stored.snapshot?.index ?? 0).toBeGreaterThanOrEqual(answeredAt);

    // Every member restarts from its storage, its host clock held back by most of the window.
    for (const n of f.nodes) {
      f.crash(n.id);
      n.clockSkew = -(REQUEST_WINDOW_MS - 60_000);
    }
    for (const n of f.nodes) expect(await f.start(n.id)).toMatchObject({ type: "booted", recovering: false });
    await f.waitForLeader();
    await ticks(f, 4, watch);

    // The copy, to every member (followers forward it to the leader): only the first answer again
    // (the same sealed bytes), never a new decision.
    let again = 0;
    for (const n of f.nodes) {
      const r = await wait(f, f.request(n.id, sealed.envelope), 150);
      expect(r?.ok).toBe(true);
      if (r?.ok === true && bytesEqual(r.envelope, answer)) again++;
    }
    expect(again).toBe(3);
    await ticks(f, 4, watch);
    expect(guessesUsed(f, "alice")).toEqual([1, 1, 1]);
    expect(watch.violations).toEqual([]);
  }, 120_000);
});
