/**
 * Red-team attacks by the vault operator (DESIGN.md §2) against the HSM cores, driven through the
 * in-process fleet. Every test asserts the guarantee HOLDS, so a test fails when an attack breaks it.
 * Powers used: host storage (copies, old copies, partial stores, confirming or not), crashes and
 * restarts, the network (drop, delay, reorder, duplicate, replay recorded messages, partitions) and
 * the HSM clocks and ticks. Never the HSM code, its NVRAM or its keys.
 */
import { VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { decodeHsmToHost, type HsmToHost, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { type PeerPacket, SimFleet, type SimNode, type Stored } from "../src/index.js";

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
  it("a register-finish replayed exactly when its id leaves the replay cache does not give the guesses back", async () => {
    const LIMIT = 3;
    const f = await SimFleet.create({ nodes: 3, seed: 31, guessLimit: LIMIT, startTime: 1_800_000_000_000 });
    // The operator runs the HSM clocks exactly one request window behind the victim's device (or,
    // without knowing the device's clock, steps the HSM clock up 1 ms at a time while offering the
    // held envelope: every early try is refused as expired and records nothing, the first one
    // accepted is decided at issuedAt - W).
    const recorded: Uint8Array[] = [];
    const victim = client(f, "victim", { now: () => f.time + W, transport: recording(f, recorded) });
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
    // Exactly two request windows after the register-finish was decided (at t0: the client's clock
    // read t0 + W, on the edge of the window), its id leaves the replay cache once the log clock
    // reaches t0 + 2W, while a request issued at t0 + W is still inside the window at t0 + 2W.
    const leader = f.leader();
    f.time = t0 + 2 * W;
    const after: string[] = [];
    // A filler entry decided at that time moves the log clock, so the id is forgotten...
    const fillerDone = client(f, "filler", { node: leader })
      .register("5555", KEY)
      .catch(() => undefined);
    await f.settle(2);
    // ...and the held register-finish is offered at the same HSM time.
    const reply = f.request(leader, registerFinish);
    await fillerDone;
    const resurrected = (await reply)?.ok === true;
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
