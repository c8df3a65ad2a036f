/**
 * Red team, second round: attacks by the vault operator (DESIGN.md §2) on the mechanisms added since
 * the first review (exactly-once answers, the recover tip, the storage check's "snapshot past the
 * tip", match indices that never go down, hellos). Every test asserts the guarantee HOLDS, so a
 * test fails when an attack breaks it.
 */

import { VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { BkvError, decodeHsmToHost, ErrorCode, fromBase64Url, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { type PeerPacket, Prng, Safety, SimFleet, type Stored } from "../src/index.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(7);

function client(
  f: SimFleet,
  user: string,
  opts: { node?: number; now?: () => number; transport?: VaultTransport } = {},
) {
  return new VaultClient({
    user,
    vaultPublicKey: f.vaultPublicKey(),
    transport: opts.transport ?? f.transport(opts.node),
    keyStretching: LIGHT,
    hpke: nodeHpkeSealer,
    now: opts.now ?? (() => f.time),
  });
}

function guesses(f: SimFleet, user: string): (number | null)[] {
  return f.nodes.map((n) =>
    n.core === null ? null : (n.core.inspect().state.records.get(user)?.guessesUsed ?? -1),
  );
}

// ---------------------------------------------------------------------------------------------
// Client requests: a request the vault never saw is not a replay, whatever the client did since.

describe("red team 2: a register-finish held back by the operator", () => {
  it("a register-finish withheld (client saw 'unavailable' and registered again) and delivered after the guesses are used does not give them back", async () => {
    const LIMIT = 3;
    const f = await SimFleet.create({ nodes: 3, seed: 41, guessLimit: LIMIT, startTime: 1_800_000_000_000 });
    // The operator's front end: the first register-finish is kept and never delivered; the client
    // sees the fleet unavailable (as for any outage) and the application simply registers again.
    const held: Uint8Array[] = [];
    let sent = 0;
    const inner = f.transport();
    const front: VaultTransport = {
      send: async (envelope) => {
        sent++;
        if (sent === 2) {
          held.push(envelope.slice());
          throw new BkvError(ErrorCode.Unavailable, "no answer from the fleet");
        }
        return inner.send(envelope);
      },
    };
    const victim = client(f, "victim", { transport: front });
    await expect(victim.register("1234", KEY)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await victim.register("1234", KEY); // the retry: a new registration, new envelopes
    expect(held).toHaveLength(1);
    // The attacker guesses until the record is destroyed (all within a few seconds).
    const attacker = client(f, "victim");
    let wrongAnswered = 0;
    for (let i = 0; i < LIMIT; i++) {
      const code = await attacker.recover(`000${i}`).then(
        () => "ok",
        (e: { code: string }) => e.code,
      );
      if (code === "WRONG_PIN") wrongAnswered++;
    }
    await expect(attacker.recover("0009")).rejects.toMatchObject({ code: "NO_RECORD" });
    // Now the withheld register-finish, still well inside its window (seconds old).
    const reply = await f.request(f.leader(), held[0]!);
    for (let t = 0; t < 3; t++) await f.tick();
    const afterDelivery = guesses(f, "victim");
    for (let i = 0; i < LIMIT; i++) {
      const code = await attacker.recover(`001${i}`).then(
        () => "ok",
        (e: { code: string }) => e.code,
      );
      if (code === "WRONG_PIN") wrongAnswered++;
    }
    const key = await client(f, "victim")
      .recover("1234")
      .then(
        (r) => toHex(r.backupKey),
        () => null,
      );
    expect(
      { wrongAnswered, keyAfterDestroy: key },
      `held register-finish answered ok=${reply?.ok}; guesses after it: ${JSON.stringify(afterDelivery)}`,
    ).toEqual({ wrongAnswered: LIMIT, keyAfterDestroy: null });
  });
});

// ---------------------------------------------------------------------------------------------
// Liveness under a one-way cut: a follower that acknowledged entries in this term and then fell
// behind the leader's snapshot.

function view(f: SimFleet): string {
  return f.nodes
    .map((n) => {
      const v = n.core?.inspect();
      return v ? `${n.id}:${v.role}/t${v.term}/c${v.commitIndex}/l${v.lastIndex}` : `${n.id}:down`;
    })
    .join(" ");
}

describe("red team 2: a follower behind the leader's snapshot", () => {
  it("a follower cut off one way until the leader compacted past it catches up once the link heals", async () => {
    const f = await SimFleet.create({
      nodes: 3,
      seed: 51,
      guessLimit: 5,
      startTime: 1_800_000_000_000,
      core: { snapshotEvery: 8 },
    });
    await client(f, "alice").register("1234", KEY);
    for (let t = 0; t < 3; t++) await f.tick();
    const leader = f.leader();
    const fol = leader === 1 ? 2 : 1;
    const term = f.node(leader).core!.inspect().term;
    // The follower acknowledged entries in this term. Now the leader's messages to it are cut.
    f.blocked = (a, b) => a === leader && b === fol;
    for (let k = 0; k < 8; k++) await client(f, `u${k}`, { node: leader }).register("1111", KEY);
    for (let t = 0; t < 3; t++) await f.tick();
    const snap = (f.node(leader).core as unknown as { raft: { snapshot: { index: number } } }).raft.snapshot
      .index;
    expect(snap).toBeGreaterThan(f.node(fol).core!.inspect().lastIndex);
    expect(f.node(leader).core!.inspect().term).toBe(term);
    // The link heals.
    f.blocked = () => false;
    for (let t = 0; t < 100; t++) await f.tick();
    const l = f.node(leader).core!.inspect();
    expect(f.node(fol).core!.inspect().commitIndex, view(f)).toBe(l.commitIndex);
  });
});

// ---------------------------------------------------------------------------------------------
// Exactly-once answers across a change of leader.

async function recoverStart(f: SimFleet, user: string, pin: string) {
  const { sealRequest } = await import("@bkv/client");
  const opaque = await import("@serenity-kit/opaque");
  await opaque.ready;
  const start = opaque.client.startLogin({ password: pin });
  const { fromBase64Url } = await import("@bkv/wire");
  return sealRequest(
    f.vaultPublicKey(),
    user,
    { op: "recover-start", ke1: fromBase64Url(start.startLoginRequest) },
    f.time,
    nodeHpkeSealer,
  );
}

describe("red team 2: a retried recover-start across a change of leader", () => {
  for (const replicated of [true, false]) {
    it(`a copy sent to the new leader ${replicated ? "(which holds the uncommitted guess)" : "(which never got it)"} gets KE2 only for a committed guess, and one guess is counted`, async () => {
      const f = await SimFleet.create({ nodes: 3, seed: 61, guessLimit: 3, startTime: 1_800_000_000_000 });
      await client(f, "alice").register("1234", KEY);
      for (let t = 0; t < 3; t++) await f.tick();
      const leader = f.leader();
      const before = guesses(f, "alice")[leader - 1]!;
      // The leader's acknowledgements never arrive (and, unless replicated, its appends neither).
      f.route = (p) =>
        p.to === leader && p.msg?.type === "app-resp"
          ? "drop"
          : !replicated && p.from === leader && p.msg?.type === "app"
            ? "drop"
            : "deliver";
      const req = await recoverStart(f, "alice", "0000");
      let first: unknown = "pending";
      void f.request(leader, req.envelope).then((r) => {
        first = r === null ? null : r.ok;
      });
      for (let t = 0; t < 2; t++) await f.tick([leader]);
      await f.settle();
      const leaderLast = f.node(leader).core!.inspect().lastIndex;
      const folLast = f.nodes.filter((n) => n.id !== leader).map((n) => n.core!.inspect().lastIndex);
      f.crash(leader);
      f.route = null;
      const l2 = await f.waitForLeader();
      // The same envelope, to the new leader (then once more).
      const r2 = await f.request(l2, req.envelope);
      const r3 = await f.request(l2, req.envelope);
      for (let t = 0; t < 3; t++) await f.tick();
      // The old leader comes back: its uncommitted copy (if only it had one) must not be answered.
      await f.start(leader);
      for (let t = 0; t < 20; t++) await f.tick();
      const after = guesses(f, "alice").filter((g) => g !== null);
      const ke2 = r2?.ok ? await req.open(r2.envelope) : null;
      expect(
        {
          first,
          r2ok: r2?.ok,
          sameReply: r2?.ok && r3?.ok ? toHex(r2.envelope) === toHex(r3.envelope) : false,
          ke2: ke2 !== null && "ok" in ke2 ? ke2.ok : ke2,
          guesses: after,
          setUp: replicated ? folLast.every((x) => x === leaderLast) : folLast.every((x) => x < leaderLast),
        },
        `leader last ${leaderLast}, followers last ${folLast}`,
      ).toEqual({
        first: null,
        r2ok: true,
        sameReply: true,
        ke2: "recover-start",
        guesses: after.map(() => before + 1),
        setUp: true,
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// A login's KE3 held back by the operator and played when it suits it.

describe("red team 2: the user's KE3 held back and delivered later", () => {
  it("while every login of the user fails (KE3 withheld), the attacker gets no more than guessLimit KE2s", async () => {
    const LIMIT = 3;
    const f = await SimFleet.create({ nodes: 3, seed: 71, guessLimit: LIMIT, startTime: 1_800_000_000_000 });
    await client(f, "victim").register("1234", KEY);
    // The operator's front end: every recover-finish of the victim is kept, and "unavailable" answered.
    const held: Uint8Array[] = [];
    let n = 0;
    const inner = f.transport();
    const front: VaultTransport = {
      send: async (envelope) => {
        if (n++ % 2 === 1) {
          held.push(envelope.slice());
          throw new BkvError(ErrorCode.Unavailable, "no answer from the fleet");
        }
        return inner.send(envelope);
      },
    };
    const victim = client(f, "victim", { transport: front });
    let attackerKe2 = 0;
    for (let cycle = 0; cycle < 2; cycle++) {
      // The victim tries to recover: its guess is used, its KE3 is withheld, it sees an outage.
      await expect(victim.recover("1234")).rejects.toMatchObject({ code: "UNAVAILABLE" });
      // The attacker takes KE2s up to the limit (each lets it test one PIN offline) and no KE3.
      while (guesses(f, "victim")[f.leader() - 1]! < LIMIT) {
        const req = await recoverStart(f, "victim", `00${cycle}${attackerKe2}`);
        const r = await f.request(f.leader(), req.envelope);
        for (let t = 0; t < 2; t++) await f.tick();
        const res = r?.ok ? await req.open(r.envelope) : null;
        if (res !== null && "ok" in res && res.ok === "recover-start") attackerKe2++;
        else break;
      }
      // Then the victim's withheld KE3: a successful login, which puts the count back to 0.
      await f.request(f.leader(), held.at(-1)!);
      for (let t = 0; t < 3; t++) await f.tick();
    }
    // At most the limit: before the fix each held KE3 put the count back to 0 and the attacker got
    // limit - 1 more KE2s per victim attempt (4 here); now a login-ok keeps the guesses started after
    // its own session counted.
    expect(
      attackerKe2,
      `guesses now ${JSON.stringify(guesses(f, "victim"))}; the victim saw only outages`,
    ).toBeLessThanOrEqual(LIMIT);
    expect(attackerKe2).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Storage mixes: any snapshot the host ever held with the entries of any other copy, on restarts,
// under an adversarial network and host (a seeded schedule, bounded).

let regReq: Uint8Array | null = null;

async function registerStart(f: SimFleet, node: number, user: string): Promise<unknown> {
  const { sealRequest } = await import("@bkv/client");
  if (regReq === null) {
    const opaque = await import("@serenity-kit/opaque");
    await opaque.ready;
    regReq = fromBase64Url(opaque.client.startRegistration({ password: "x" }).registrationRequest);
  }
  const sealed = await sealRequest(
    f.vaultPublicKey(),
    user,
    { op: "register-start", registrationRequest: regReq },
    f.time,
    nodeHpkeSealer,
  );
  return f.request(node, sealed.envelope);
}

describe("red team 2: snapshots and entries of different copies combined at boot", () => {
  it("no combination of stored copies, with crashes, unconfirmed writes and replays, commits two entries at one index or loses an acknowledged one", async () => {
    const failures: string[] = [];
    let booted = 0;
    let mixes = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const rng = new Prng(seed * 104729);
      const f = await SimFleet.create({
        nodes: 3,
        seed: 100 + seed,
        guessLimit: 100,
        startTime: 1_800_000_000_000,
        core: { snapshotEvery: 4, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
      });
      f.autoDeliver = false;
      const safety = new Safety(f, { guessLimit: 100 });
      // Every version of every node's host storage, taken at each persist (before it is confirmed).
      const versions = new Map<number, Stored[]>();
      const pending = new Map<number, { core: unknown; id: number }[]>();
      const fleet = f as unknown as { onFrame: (n: (typeof f.nodes)[0], b: Uint8Array) => void };
      const orig = fleet.onFrame.bind(f);
      fleet.onFrame = (n, b) => {
        orig(n, b);
        const m = decodeHsmToHost(b);
        if (m.type !== "persist") return;
        const v = versions.get(n.id) ?? [];
        v.push(n.copyStorage());
        if (v.length > 60) v.splice(0, 30);
        versions.set(n.id, v);
        const p = pending.get(n.id) ?? [];
        p.push({ core: n.core, id: m.id });
        pending.set(n.id, p);
      };
      for (const n of f.nodes) n.ackPersist = false;
      const confirm = async (i: number) => {
        const n = f.node(i);
        const p = (pending.get(i) ?? []).filter((x) => x.core === n.core && n.core !== null);
        const x = p.shift();
        pending.set(i, p);
        if (x !== undefined) await f.deliverFrame(n, { type: "persisted", id: x.id });
      };
      const trace: string[] = [];
      let users = 0;
      for (let step = 0; step < 1200 && safety.ok; step++) {
        const r = rng.next();
        const up = f.nodes.filter((n) => n.core !== null).map((n) => n.id);
        const down = f.nodes.filter((n) => n.core === null).map((n) => n.id);
        if (r < 0.3 && f.inflight.length > 0) {
          await f.deliver(f.inflight.splice(rng.int(f.inflight.length), 1)[0]!);
        } else if (r < 0.36 && f.sent.length > 0) {
          const p: PeerPacket = rng.pick(f.sent);
          await f.deliver(p);
        } else if (r < 0.5) {
          await f.tick(rng.chance(0.7) ? undefined : [rng.pick(f.nodes).id]);
        } else if (r < 0.7 && up.length > 0) {
          await confirm(rng.pick(up));
        } else if (r < 0.78 && up.length > 0) {
          void registerStart(f, rng.pick(up), `u${users++}`);
        } else if (r < 0.79 && up.length > 1) {
          const i = rng.pick(up);
          trace.push(`${step} crash ${i}`);
          f.crash(i);
        } else if (r < 0.82 && down.length > 0) {
          const i = rng.pick(down);
          const n = f.node(i);
          const real = n.stored;
          const vs = versions.get(i) ?? [];
          if (vs.length > 0 && rng.chance(0.5)) {
            // A snapshot from one copy, the entries of another (those after the snapshot).
            const withSnap = vs.filter((v) => v.snapshot !== null);
            const snap = withSnap.length > 0 && rng.chance(0.8) ? rng.pick(withSnap).snapshot : null;
            const v = rng.pick([...vs, real]);
            n.stored = {
              snapshot: snap ?? v.snapshot,
              entries: v.entries.filter(
                (e) => (snap ?? v.snapshot) === null || e.index > (snap ?? v.snapshot)!.index,
              ),
            };
            mixes++;
          }
          const b = await f.start(i);
          if (b.type !== "booted") {
            f.crash(i);
            n.stored = real;
            await f.start(i);
          } else {
            booted++;
            trace.push(`${step} restart ${i}${b.recovering ? " recovering" : ""}`);
          }
        } else if (r < 0.9) {
          await f.tick();
        }
        await f.settle(2);
        safety.check();
      }
      if (process.env["RED_DEBUG"])
        console.error(
          `seed ${seed}: committed ${safety.maxCommitted}, ${booted} boots, ${mixes} mixes, ${view(f)}`,
        );
      if (!safety.ok)
        failures.push(`seed ${seed}: ${safety.violations.join("; ")}\n${trace.slice(-20).join("\n")}`);
    }
    expect(failures, `${booted} boots, ${mixes} mixed storages`).toEqual([]);
  }, 300_000);
});
