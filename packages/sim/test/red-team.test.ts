/**
 * Red-team attacks by the vault operator (DESIGN.md §2) against the HSM cores, driven through the
 * in-process fleet. Every test asserts the guarantee HOLDS, so a test fails when an attack breaks it.
 * Powers used: host storage (copies, old copies, partial stores, confirming or not), crashes and
 * restarts, the network (drop, delay, reorder, duplicate, replay recorded messages, partitions) and
 * the HSM clocks and ticks. Never the HSM code, its NVRAM or its keys.
 */

import { VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { REQUEST_MEMORY_MS } from "@bkv/hsm-core";
import { decodeHsmToHost, fromBase64Url, type HsmToHost, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { type PeerPacket, SimFleet, type SimNode, type Stored } from "../src/index.js";
import { CommitWatch } from "./sim-client.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(7);
const W = 10 * 60 * 1000; // REQUEST_WINDOW_MS

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

/** A transport that records every envelope it sends (the operator's front end sees them all). */
function recording(f: SimFleet, log: Uint8Array[]): VaultTransport {
  const t = f.transport();
  return {
    send: async (envelope) => {
      log.push(envelope.slice());
      return t.send(envelope);
    },
  };
}

async function ticks(f: SimFleet, n: number, w?: CommitWatch, only?: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    await f.tick(only);
    w?.check();
  }
}

function guesses(f: SimFleet, user: string): (number | null)[] {
  return f.nodes.map((n) =>
    n.core === null ? null : (n.core.inspect().state.records.get(user)?.guessesUsed ?? -1),
  );
}

// ---------------------------------------------------------------------------------------------
// The replay cache and the request window.

describe("red team: replayed client requests at the edge of the request window", () => {
  it("a register-finish replayed when its id leaves the replay cache does not give the guesses back", async () => {
    const LIMIT = 3;
    const f = await SimFleet.create({ nodes: 3, seed: 31, guessLimit: LIMIT, startTime: 1_800_000_000_000 });
    // The operator runs the HSM clocks as far behind the victim's device as the window allows (or,
    // without knowing the device's clock, steps the HSM clock up 1 ms at a time while offering the
    // held envelope: every early try is refused as expired and records nothing, the first one
    // accepted is decided just inside issuedAt - W). A request exactly at the edge is refused, so
    // 1 ms inside it is the farthest.
    const recorded: Uint8Array[] = [];
    const victim = client(f, "victim", { now: () => f.time + W - 1, transport: recording(f, recorded) });
    const t0 = f.time;
    await victim.register("1234", KEY);
    expect(recorded).toHaveLength(2); // register-start, register-finish
    const registerFinish = recorded[1]!;
    // The attacker guesses until the record is destroyed.
    const attacker = client(f, "victim");
    for (let i = 0; i < LIMIT; i++) {
      await expect(attacker.recover(`000${i}`)).rejects.toMatchObject({ code: "WRONG_PIN" });
    }
    await expect(attacker.recover("0009")).rejects.toMatchObject({ code: "NO_RECORD" });
    for (let t = 0; t < 3; t++) await f.tick();
    // Once the log clock has moved far enough past the entry that answered the register-finish (at
    // t0), its id leaves the replay cache. Before the fix that was at t0 + 2W, while a request issued
    // at t0 + W was still inside the window at t0 + 2W; now it is kept REQUEST_MEMORY_MS, and the
    // window is strict. The operator tries both moments, and the moment just after each.
    const after: string[] = [];
    let resurrected = false;
    for (const offset of [2 * W, 2 * W + 1, REQUEST_MEMORY_MS, REQUEST_MEMORY_MS + 1]) {
      const leader = f.leader();
      f.time = t0 + offset;
      // A filler entry decided at that time moves the log clock, so the id may be forgotten...
      const fillerDone = client(f, `filler${offset}`, { node: leader })
        .register("5555", KEY)
        .catch(() => undefined);
      await f.settle(2);
      // ...and the held register-finish is offered at the same HSM time.
      const reply = await f.request(leader, registerFinish);
      await fillerDone;
      if (reply?.ok === true) {
        // An answer is sealed for the victim; what matters is whether the record came back.
        for (let t = 0; t < 3; t++) await f.tick();
        if (guesses(f, "victim").some((g) => g !== null && g >= 0)) resurrected = true;
      }
    }
    for (let t = 0; t < 3; t++) await f.tick();
    // The guarantees: the destroyed record stays destroyed (no guess count back at 0), no more wrong
    // guesses are answered, and K is never returned after the record was destroyed.
    if (resurrected) after.push("the replayed register-finish was accepted");
    after.push(`guesses used now: ${JSON.stringify(guesses(f, "victim"))}`);
    // K after the destroy (the correct PIN; a login-ok also puts the count back to 0)...
    const key = await client(f, "victim")
      .recover("1234")
      .then(
        (r) => r.backupKey,
        () => null,
      );
    // ...and wrong guesses past the limit.
    let wrongAnswered = LIMIT;
    for (let i = 0; i < LIMIT; i++) {
      const code = await attacker.recover(`001${i}`).then(
        () => "ok",
        (e: { code: string }) => e.code,
      );
      if (code === "WRONG_PIN") wrongAnswered++;
    }
    after.push(`wrong guesses answered in all: ${wrongAnswered} (limit ${LIMIT})`);
    expect(
      { resurrected, wrongAnswered, keyAfterDestroy: key === null ? null : toHex(key) },
      after.join("; "),
    ).toEqual({
      resurrected: false,
      wrongAnswered: LIMIT,
      keyAfterDestroy: null,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Host storage and network adversary: Raft safety under rollbacks, partial stores and replays.

interface Pending {
  core: unknown;
  id: number;
}

/** The host side that the simulator does not play: persists confirmed late, never, or after storing part. */
class Hosts {
  readonly pending = new Map<number, Pending[]>();
  readonly versions = new Map<number, Stored[]>();
  constructor(readonly f: SimFleet) {
    const fleet = f as unknown as { onFrame: (n: SimNode, b: Uint8Array) => void };
    const orig = fleet.onFrame.bind(f);
    fleet.onFrame = (n: SimNode, b: Uint8Array) => {
      orig(n, b);
      const m: HsmToHost = decodeHsmToHost(b);
      if (m.type !== "persist" || n.ackPersist) return;
      const p = this.pending.get(n.id) ?? [];
      p.push({ core: n.core, id: m.id });
      this.pending.set(n.id, p);
      const v = this.versions.get(n.id) ?? [];
      v.push(n.copyStorage());
      if (v.length > 40) v.splice(0, 20);
      this.versions.set(n.id, v);
    };
    for (const n of f.nodes) n.ackPersist = false;
  }

  /** Confirm node i's oldest unconfirmed persist (if its HSM is still the one that asked). */
  async confirm(i: number, keepEntries?: number): Promise<boolean> {
    const n = this.f.node(i);
    const p = (this.pending.get(i) ?? []).filter((x) => x.core === n.core && n.core !== null);
    this.pending.set(i, p);
    const x = p.shift();
    if (x === undefined) return false;
    // A host that stores part of the batch (a prefix of its log) but confirms it all.
    if (keepEntries !== undefined) n.stored.entries = n.stored.entries.slice(0, keepEntries);
    await this.f.deliverFrame(n, { type: "persisted", id: x.id });
    return true;
  }

  async confirmAll(i: number): Promise<void> {
    for (let k = 0; k < 50 && (await this.confirm(i)); k++) await this.f.settle(1);
  }
}

let registrationRequest: Uint8Array | null = null;

/** A client request that the leader records as a log entry (a register-start). */
async function regRequest(): Promise<Uint8Array> {
  if (registrationRequest === null) {
    const opaque = await import("@serenity-kit/opaque");
    await opaque.ready;
    registrationRequest = fromBase64Url(
      opaque.client.startRegistration({ password: "x" }).registrationRequest,
    );
  }
  return registrationRequest;
}

async function load(f: SimFleet, node: number, user: string): Promise<Promise<unknown>> {
  const { sealRequest } = await import("@bkv/client");
  const sealed = await sealRequest(
    f.vaultPublicKey(),
    user,
    { op: "register-start", registrationRequest: await regRequest() },
    f.time,
    nodeHpkeSealer,
  );
  return f.request(node, sealed.envelope);
}

const SEED0 = Number(process.env["RED_SEED0"] ?? 1);
const SEEDS = Number(process.env["RED_SEEDS"] ?? 8);
const STEPS = Number(process.env["RED_STEPS"] ?? 600);

describe("red team: host storage adversary (random schedules)", () => {
  it("rollbacks, partial stores, late or missing confirms, crashes and replayed messages never commit two entries at one index", async () => {
    const { Prng } = await import("../src/index.js");
    const failures: string[] = [];
    for (let seed = SEED0; seed < SEED0 + SEEDS; seed++) {
      const rng = new Prng(seed * 7919);
      const f = await SimFleet.create({
        nodes: 3,
        seed,
        guessLimit: 100,
        startTime: 1_800_000_000_000,
        core: { snapshotEvery: 6, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 60 },
      });
      f.autoDeliver = false;
      const hosts = new Hosts(f);
      const watch = new CommitWatch(f);
      let cut: Set<number> | null = null;
      f.blocked = (a, b) => cut !== null && cut.has(a) !== cut.has(b);
      const trace: string[] = [];
      let users = 0;
      for (let step = 0; step < STEPS && watch.violations.length === 0; step++) {
        const r = rng.next();
        const up = f.nodes.filter((n) => n.core !== null).map((n) => n.id);
        const down = f.nodes.filter((n) => n.core === null).map((n) => n.id);
        if (r < 0.3 && f.inflight.length > 0) {
          const p = f.inflight.splice(rng.int(f.inflight.length), 1)[0]!;
          await f.deliver(p);
        } else if (r < 0.38 && f.inflight.length > 0) {
          await f.deliver(f.inflight.shift()!);
        } else if (r < 0.42 && f.sent.length > 0) {
          const p: PeerPacket = rng.pick(f.sent);
          trace.push(`${step} replay ${p.from}->${p.to}`);
          await f.deliver(p);
        } else if (r < 0.44 && f.inflight.length > 0) {
          f.inflight.splice(rng.int(f.inflight.length), 1);
        } else if (r < 0.58) {
          await f.tick(rng.chance(0.7) ? undefined : [rng.pick(f.nodes).id]);
        } else if (r < 0.78 && up.length > 0) {
          const i = rng.pick(up);
          const partial = rng.chance(0.02)
            ? Math.max(0, f.node(i).stored.entries.length - 1 - rng.int(3))
            : undefined;
          if (partial !== undefined)
            trace.push(`${step} node ${i} stores part, keeps ${partial} entries, confirms`);
          await hosts.confirm(i, partial);
        } else if (r < 0.84 && up.length > 0) {
          void load(f, rng.pick(up), `u${users++}`);
        } else if (r < 0.85 && up.length > 1) {
          const i = rng.pick(up);
          trace.push(`${step} crash ${i}`);
          f.crash(i);
        } else if (r < 0.89 && down.length > 0) {
          const i = rng.pick(down);
          const n = f.node(i);
          const real = n.stored;
          const roll = rng.chance(0.3) ? rng.next() : 1;
          const versions = hosts.versions.get(i) ?? [];
          if (roll < 0.25) {
            const keep = Math.max(1, real.entries.length - 1 - rng.int(4));
            n.stored = { snapshot: real.snapshot, entries: real.entries.slice(0, keep) };
            trace.push(`${step} restart ${i} from a prefix (${keep} entries)`);
          } else if (roll < 0.5 && versions.length > 0) {
            const v = rng.pick(versions);
            n.stored = {
              snapshot: v.snapshot,
              entries: v.entries.slice(0, Math.max(1, v.entries.length - rng.int(3))),
            };
            trace.push(`${step} restart ${i} from an old copy`);
          } else if (roll < 0.6 && versions.length > 0) {
            // The newest snapshot the host ever got (maybe unconfirmed) with the entries of an old copy.
            const snap = [...versions].reverse().find((v) => v.snapshot !== null)?.snapshot ?? real.snapshot;
            const v = rng.pick(versions);
            n.stored = {
              snapshot: snap,
              entries: v.entries.filter((e) => snap === null || e.index > snap.index),
            };
            trace.push(`${step} restart ${i} from the newest snapshot with old entries`);
          } else trace.push(`${step} restart ${i}`);
          const b = await f.start(i);
          if (b.type !== "booted") {
            trace.push(`${step}   refused: ${"message" in b ? b.message : b.type}`);
            f.crash(i);
            n.stored = real;
          }
        } else if (r < 0.9 && (cut !== null || rng.chance(0.5))) {
          cut = cut === null ? new Set(f.nodes.filter(() => rng.chance(0.5)).map((n) => n.id)) : null;
          trace.push(`${step} ${cut === null ? "heal" : `partition ${[...cut].join(",")}`}`);
        }
        await f.settle(2);
        watch.check();
      }
      if (process.env["RED_DEBUG"])
        console.log(
          `seed ${seed}: committed up to ${Math.max(...watch.at.keys())}, ${trace.filter((t) => t.includes("restart")).length} restarts, recovering ${f.nodes.filter((n) => n.core?.inspect().recovering).length} ${f.nodes
            .map((n) => {
              const v = n.core?.inspect();
              return v
                ? `${v.role}/t${v.term}/c${v.commitIndex}/l${v.lastIndex}/p${(hosts.pending.get(n.id) ?? []).length}`
                : "down";
            })
            .join(" ")} inflight ${f.inflight.length}`,
        );
      if (watch.violations.length > 0)
        failures.push(`seed ${seed}: ${watch.violations.join("; ")}\n${trace.slice(-25).join("\n")}`);
    }
    expect(failures).toEqual([]);
  }, 300_000);
});

describe("red team: targeted storage and network attacks", () => {
  it("restore, let a few entries through, restart again, then cut off the full log: no stale leader, no guess comes back", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 44, guessLimit: 5, startTime: 1_800_000_000_000 });
    const watch = new CommitWatch(f);
    await client(f, "alice").register("1234", KEY);
    await ticks(f, 3, watch);
    const olds = f.nodes.map((n) => n.copyStorage());
    const old3 = olds[2]!;
    // Node 3 down: every guess commits on nodes 1 and 2 only.
    f.crash(3);
    const leader = f.leader();
    expect(leader).not.toBe(3);
    const other = leader === 1 ? 2 : 1;
    for (const pin of ["0000", "0001"]) {
      await expect(client(f, "alice", { node: leader }).recover(pin)).rejects.toMatchObject({
        code: "WRONG_PIN",
      });
    }
    await ticks(f, 3, watch);
    expect(guesses(f, "alice")[leader - 1]).toBe(2);
    // The follower's old disk back, a few entries through, then a crash and a restart on what the
    // host kept (genuine entries below its old tip).
    f.crash(other);
    f.node(other).stored = olds[other - 1]!;
    const b = await f.start(other);
    expect(b).toMatchObject({ type: "booted", recovering: true });
    f.autoDeliver = false;
    for (let k = 0; k < 6 && f.inflight.length > 0; k++) await f.deliver(f.inflight.shift()!);
    await f.tick();
    for (let k = 0; k < 4 && f.inflight.length > 0; k++) await f.deliver(f.inflight.shift()!);
    await f.settle();
    f.inflight = [];
    f.autoDeliver = true;
    f.crash(other);
    expect(await f.start(other)).toMatchObject({ type: "booted", recovering: true });
    // The full log goes away; node 3 comes back from an old disk too (before the guesses).
    f.crash(leader);
    f.node(3).stored = old3;
    await f.start(3);
    await ticks(f, 120, watch);
    const l = f.leader();
    if (l !== 0) expect(guesses(f, "alice")[l - 1]).toBeGreaterThanOrEqual(2);
    // Node 3 never had the guesses; the recovering node must not help it lead.
    expect(l).toBe(0);
    // The full log returns: the fleet heals and counts both guesses.
    await f.start(leader);
    await ticks(f, 120, watch);
    expect(f.leader()).not.toBe(0);
    await ticks(f, 5, watch);
    for (const g of guesses(f, "alice")) expect(g).toBe(2);
    expect(watch.violations).toEqual([]);
  });

  it("a follower restarted with entries its host stored but never confirmed does not acknowledge them", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 45, guessLimit: 5, startTime: 1_800_000_000_000 });
    const watch = new CommitWatch(f);
    await client(f, "alice").register("1234", KEY);
    await ticks(f, 3, watch);
    const leader = f.leader();
    const others = [1, 2, 3].filter((i) => i !== leader);
    const [fol, off] = others as [number, number];
    f.crash(off);
    // The follower's host stores the guess entry but does not confirm it, and the HSM restarts.
    f.node(fol).ackPersist = false;
    const { sealRequest } = await import("@bkv/client");
    const req = await sealRequest(
      f.vaultPublicKey(),
      "bob",
      { op: "register-start", registrationRequest: await regRequest() },
      f.time,
      nodeHpkeSealer,
    );
    let answered = false;
    let reply = "";
    void f.request(leader, req.envelope).then((r) => {
      answered = r?.ok === true;
      reply = JSON.stringify(r?.ok ? "ok" : r);
    });
    await ticks(f, 4, watch);
    const dbg = () =>
      `answered=${answered} ${f.nodes
        .map((n) => {
          const v = n.core?.inspect();
          return v
            ? `${n.id}:${v.role}/t${v.term}/c${v.commitIndex}/l${v.lastIndex}/s${n.stored.entries.at(-1)?.index}`
            : `${n.id}:down`;
        })
        .join(" ")}`;
    const stored = f.node(fol).stored.entries.at(-1)!.index;
    expect(stored).toBe(f.node(leader).core!.inspect().lastIndex);
    f.crash(fol);
    await f.start(fol); // still never confirms
    await ticks(f, 40, watch);
    // Only the leader and the follower are up: the entry commits only if the follower acknowledged
    // what NVRAM never recorded as durable.
    expect(answered, `${reply} ${dbg()}`).toBe(false);
    expect(f.node(leader).core!.inspect().commitIndex).toBeLessThan(stored);
    f.node(fol).ackPersist = true;
    f.crash(fol);
    await f.start(fol);
    await ticks(f, 40, watch);
    expect(f.node(leader).core!.inspect().commitIndex).toBeGreaterThanOrEqual(stored);
    expect(watch.violations).toEqual([]);
  });

  it("every peer message recorded before restarts, replayed after them (hellos included), changes nothing", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 46, guessLimit: 5, startTime: 1_800_000_000_000 });
    const watch = new CommitWatch(f);
    await client(f, "alice").register("1234", KEY);
    for (const pin of ["0000", "0001"]) {
      await expect(client(f, "alice").recover(pin)).rejects.toMatchObject({ code: "WRONG_PIN" });
    }
    await ticks(f, 3, watch);
    const recorded = [...f.sent];
    const leader = f.leader();
    const fol = leader === 1 ? 2 : 1;
    const replayedBefore = f.nodes.map((n) => n.core!.inspect().peerReplayed);
    f.crash(fol);
    await f.start(fol);
    f.crash(leader);
    await f.start(leader);
    await ticks(f, 40, watch);
    f.autoDeliver = false;
    // Old hellos first (to try to move known epochs back), then everything else, twice, reordered.
    const hellosFirst = [...recorded].sort((a, b) => a.bytes.length - b.bytes.length);
    for (const p of [...hellosFirst, ...recorded.reverse()]) await f.deliver(p);
    await f.settle();
    for (let k = 0; k < 2000 && f.inflight.length > 0; k++) await f.deliver(f.inflight.shift()!);
    f.autoDeliver = true;
    await ticks(f, 40, watch);
    const replayedAfter = f.nodes.map((n) => n.core!.inspect().peerReplayed);
    expect(replayedAfter.reduce((a, b) => a + b, 0)).toBeGreaterThan(
      replayedBefore.reduce((a, b) => a + b, 0),
    );
    await expect(client(f, "alice").recover("0002")).rejects.toMatchObject({
      code: "WRONG_PIN",
      guessesRemaining: 2,
    });
    await ticks(f, 3, watch);
    for (const g of guesses(f, "alice")) expect(g).toBe(3);
    expect(watch.violations).toEqual([]);
  });
});
