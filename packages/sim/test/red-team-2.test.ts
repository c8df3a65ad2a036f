/**
 * Red team, second round: attacks by the vault operator (DESIGN.md §2) on the mechanisms added since
 * the first review (exactly-once answers, the recover tip, the storage check's "snapshot past the
 * tip", match indices that never go down, hellos). Every test asserts the guarantee HOLDS, so a
 * test fails when an attack breaks it.
 */

import { VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { BkvError, ErrorCode, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { SimFleet } from "../src/index.js";

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
