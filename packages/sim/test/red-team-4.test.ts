/**
 * Red team, fourth round: attacks by the vault operator (DESIGN.md §2) on the storage check at boot
 * (its "snapshot past the tip" case) combined with recovery, which lowers the NVRAM tip while it
 * re-persists an old disk. Every test asserts the guarantee HOLDS, so a test fails when an attack
 * breaks it. Powers used: host storage (old copies, a snapshot taken from one copy), crashes and
 * restarts, partitions, ticks. Never the HSM code, its NVRAM or its keys.
 */

import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { LOGIN_TTL_MS } from "@bkv/hsm-core";
import {
  ErrorCode,
  FinishAction,
  fromBase64Url,
  toBase64Url,
  toHex,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { Prng, SimFleet, type Stored } from "../src/index.js";
import { wait } from "./attack-user.js";
import { CommitWatch, guessesUsed, LIGHT, simClient } from "./sim-client.js";

const KEY = new Uint8Array(32).fill(7);
const START = 1_800_000_000_000;

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
    await simClient(f, "alice", leader).register("1234", KEY);
    for (let k = 0; k < 8 && f.node(x).stored.snapshot === null; k++)
      await simClient(f, `filler${k}`, leader).register("9999", KEY);
    await ticks(f, 3, watch);
    const withSnap = f.node(x).copyStorage();
    expect(withSnap.snapshot).not.toBeNull();
    const snapIndex = withSnap.snapshot!.index;
    // O down: the two wrong guesses commit on the leader and X only.
    f.crash(o);
    for (const pin of ["0000", "0001"]) {
      await expect(simClient(f, "alice", leader).recover(pin)).rejects.toMatchObject({ code: "WRONG_PIN" });
    }
    await ticks(f, 4, watch);
    expect(guessesUsed(f, "alice")[leader - 1]).toBe(2);
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
    if (l !== 0) expect(guessesUsed(f, "alice")[l - 1]).toBeGreaterThanOrEqual(2);
    expect(l).toBe(0);

    // The full log returns: the fleet heals and every member counts both guesses.
    expect(await f.start(leader)).toMatchObject({ type: "booted" });
    await ticks(f, 150, watch);
    expect(f.leader()).not.toBe(0);
    await ticks(f, 10, watch);
    for (const g of guessesUsed(f, "alice")) expect(g).toBe(2);
    expect(f.node(x).core!.inspect().recovering).toBe(false);
    expect(watch.violations).toEqual([]);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Attack: every power at once on one record. The operator holds the victim's KE3s and delivers
// them late and out of order, takes KE2s with wrong PINs, replays any client envelope it ever saw
// (the victim's and its own, every kind) to any member at any time, crashes members, restarts them
// on their current disk or an old copy of it, moves the fleet's clock and skews members' clocks.
// The oracle (as in round 3): between two of the victim's successful logins at most guessLimit
// distinct login sessions release KE2, and none once the fleet said the record is destroyed.

interface Envelope {
  what: string;
  envelope: Uint8Array;
  open: (e: Uint8Array) => Promise<VaultResult>;
}

async function seal(f: SimFleet, user: string, body: VaultOp, what: string): Promise<Envelope> {
  const s = await sealRequest(f.vaultPublicKey(), user, body, f.time, nodeHpkeSealer);
  return { what, envelope: s.envelope, open: (e) => s.open(e) };
}

/** A login start by `user` with `password`, sealed as the operator can: its OPAQUE state and envelope. */
async function sealStart(f: SimFleet, user: string, password: string, what: string) {
  const login = opaque.client.startLogin({ password });
  const e = await seal(f, user, { op: "recover-start", ke1: fromBase64Url(login.startLoginRequest) }, what);
  return { login, e };
}

async function deliver(f: SimFleet, node: number, e: Envelope): Promise<VaultResult | null> {
  const reply = await wait(f, f.request(node, e.envelope), 150);
  if (reply === null || !reply.ok) return null;
  try {
    return await e.open(reply.envelope);
  } catch {
    return null;
  }
}

describe("red team 4: every operator power at once on one record", () => {
  it("held and replayed client envelopes, crashes, old disks and clock games never release more than guessLimit KE2s between two of the victim's successes", async () => {
    const LIMIT = 3;
    const PIN = "1357";
    const problems: string[] = [];
    const totals = { ke2: 0, successes: 0, replays: 0, rollbacks: 0, refusedStarts: 0 };
    for (let seed = 1; seed <= 8; seed++) {
      const rng = new Prng(seed * 104651);
      const f = await SimFleet.create({
        nodes: 3,
        seed: 420 + seed,
        guessLimit: LIMIT,
        startTime: START,
        core: { snapshotEvery: 6, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
      });
      const watch = new CommitWatch(f);
      await simClient(f, "victim", f.leader()).register(PIN, KEY);
      await opaque.ready;
      const seen: Envelope[] = [];
      const heldKe3: (Envelope & { sid: string })[] = [];
      const attackerSessions: Uint8Array[] = [];
      const ke2Sessions = new Set<string>();
      const succeeded = new Set<string>();
      const copies = new Map<number, Stored[]>();
      let sinceSuccess = 0;
      /** Guesses left as the fleet's answers last said (what a careful attacker goes by). */
      let left = LIMIT;
      let destroyed = false;
      const trace: string[] = [];
      const up = () => f.nodes.filter((n) => n.core !== null).map((n) => n.id);
      const anyUp = () => {
        const u = up();
        return u.length === 0 ? 0 : rng.pick(u);
      };
      /** What an answer tells the oracle, whoever's envelope it answers. */
      const judge = (step: number, e: Envelope, r: VaultResult | null, how: string) => {
        if (r === null) return;
        if ("ok" in r && r.ok === "recover-start") {
          const sid = toHex(r.sessionId);
          left = r.guessesRemaining;
          if (!ke2Sessions.has(sid)) {
            ke2Sessions.add(sid);
            totals.ke2++;
            sinceSuccess++;
            if (destroyed) problems.push(`seed ${seed} step ${step}: a KE2 after the record was destroyed`);
            if (sinceSuccess > LIMIT)
              problems.push(
                `seed ${seed} step ${step}: KE2 number ${sinceSuccess} since the victim's last success`,
              );
          }
        } else if ("ok" in r && r.ok === "recover-finish" && e.what.startsWith("vfinish:")) {
          if (destroyed) problems.push(`seed ${seed} step ${step}: the key came back after destroy`);
          const sid = e.what.slice("vfinish:".length);
          if (!succeeded.has(sid)) {
            succeeded.add(sid);
            sinceSuccess = 0;
            left = LIMIT;
            totals.successes++;
          }
        } else if ("error" in r) {
          if (r.error === ErrorCode.NoRecord) destroyed = true;
          if (r.error === ErrorCode.WrongPin && r.guessesRemaining === 0) destroyed = true;
          if (r.error === ErrorCode.WrongPin) left = r.guessesRemaining;
          if (e.what === "astart") totals.refusedStarts++;
        }
        trace.push(
          `${step} ${how} ${e.what.split(":")[0]} -> ${"ok" in r ? r.ok : r.error} (${sinceSuccess})`,
        );
      };
      for (let step = 0; step < 70; step++) {
        const r = rng.next();
        const node = anyUp();
        if (node === 0) {
          await f.start(rng.pick(f.nodes).id);
          continue;
        }
        if (r < 0.14) {
          // The victim's device starts a login; the operator holds its KE3.
          if (left === 0 && rng.chance(0.9)) continue;
          const { login, e } = await sealStart(f, "victim", PIN, "vstart");
          seen.push(e);
          const res = await deliver(f, node, e);
          judge(step, e, res, `to ${node}`);
          if (res !== null && "ok" in res && res.ok === "recover-start") {
            const fin = opaque.client.finishLogin({
              clientLoginState: login.clientLoginState,
              loginResponse: toBase64Url(res.ke2),
              password: PIN,
              keyStretching: LIGHT,
            })!;
            const sid = toHex(res.sessionId);
            const k = await seal(
              f,
              "victim",
              {
                op: "recover-finish",
                sessionId: res.sessionId,
                ke3: fromBase64Url(fin.finishLoginRequest),
                action: FinishAction.Recover,
              },
              `vfinish:${sid}`,
            );
            heldKe3.push({ ...k, sid });
          }
        } else if (r < 0.4) {
          // The attacker's wrong-PIN login start (a careful attacker keeps one guess in hand).
          if (left <= 1 && rng.chance(0.9)) continue;
          const { e } = await sealStart(f, "victim", `9${step}`, "astart");
          seen.push(e);
          const res = await deliver(f, node, e);
          judge(step, e, res, `to ${node}`);
          if (res !== null && "ok" in res && res.ok === "recover-start") attackerSessions.push(res.sessionId);
        } else if (r < 0.52 && heldKe3.length > 0) {
          const h = heldKe3.splice(rng.int(heldKe3.length), 1)[0]!;
          seen.push(h);
          judge(step, h, await deliver(f, node, h), `held to ${node}`);
        } else if (r < 0.55 && attackerSessions.length > 0 && (sinceSuccess < LIMIT || rng.chance(0.2))) {
          const sid = attackerSessions.splice(rng.int(attackerSessions.length), 1)[0]!;
          const e = await seal(
            f,
            "victim",
            { op: "recover-finish", sessionId: sid, ke3: new Uint8Array(0), action: FinishAction.Recover },
            "afinish",
          );
          seen.push(e);
          judge(step, e, await deliver(f, node, e), `to ${node}`);
        } else if (r < 0.68 && seen.length > 0) {
          // Any envelope seen, again, to any member.
          const e = rng.pick(seen);
          totals.replays++;
          judge(step, e, await deliver(f, node, e), `replay to ${node}`);
        } else if (r < 0.74 && up().length > 2) {
          f.crash(node);
          trace.push(`${step} crash ${node}`);
        } else if (r < 0.82) {
          const down = f.nodes.filter((n) => n.core === null).map((n) => n.id);
          if (down.length === 0) continue;
          const i = rng.pick(down);
          const old = copies.get(i) ?? [];
          const real = f.node(i).stored;
          if (old.length > 0 && rng.chance(0.5)) {
            f.node(i).stored = rng.pick(old);
            totals.rollbacks++;
          }
          const b = await f.start(i);
          if (b.type !== "booted") {
            f.crash(i);
            f.node(i).stored = real;
            await f.start(i);
          }
          trace.push(`${step} start ${i}${b.type === "booted" && b.recovering ? " recovering" : ""}`);
        } else if (r < 0.87) {
          const c = copies.get(node) ?? [];
          c.push(f.node(node).copyStorage());
          copies.set(node, c.slice(-4));
        } else if (r < 0.91) {
          f.time += rng.chance(0.3) ? LOGIN_TTL_MS : rng.int(LOGIN_TTL_MS / 4);
          trace.push(`${step} clock`);
        } else if (r < 0.94) {
          f.node(node).clockSkew = rng.int(3 * 60 * 1000);
          trace.push(`${step} skew ${node}`);
        } else {
          for (let t = 0; t < 5; t++) await f.tick();
        }
        watch.check();
      }
      if (watch.violations.length > 0) problems.push(`seed ${seed}: ${watch.violations.join("; ")}`);
      if (problems.some((p) => p.startsWith(`seed ${seed} `) || p.startsWith(`seed ${seed}:`)))
        problems.push(trace.slice(-30).join("\n"));
      if (process.env["RED_DEBUG"]) console.error(trace.join("\n"));
    }
    if (process.env["RED_DEBUG"]) console.error(JSON.stringify(totals));
    expect(problems).toEqual([]);
    // The schedules did what they are for: KE2s up to the limit, successes, replays and old disks.
    expect({
      ke2: totals.ke2 > 10,
      successes: totals.successes > 2,
      replays: totals.replays > 20,
      rollbacks: totals.rollbacks > 2,
    }).toEqual({ ke2: true, successes: true, replays: true, rollbacks: true });
  }, 600_000);
});
