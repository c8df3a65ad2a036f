/**
 * The vault client with trust pins, against a real in-process fleet: it learns the vault key only
 * from a verified bundle, sends nothing when the bundle fails, and refuses an answer that comes
 * without a bundle or with a (valid) bundle vouching for another fleet than the one it sealed to.
 */
import {
  AnswerBundleError,
  memoryCheckpointStore,
  VaultClient,
  type VaultReply,
  type VaultTransport,
} from "@bkv/client";
import { SimFleet } from "@bkv/sim";
import { BkvError, type BundleJson, ErrorCode, isBkvError } from "@bkv/wire";
import { beforeAll, describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(9);

let fleet: SimFleet;

beforeAll(async () => {
  fleet = await SimFleet.create({ nodes: 1, seed: 5, startTime: NOW });
});

/**
 * The log vouches for the in-process fleet's real vault key (epoch 1) and for another fleet (epoch
 * 2), each with the evidence of a genesis made in the test's world. The bundle fetched first carries
 * the evidence; the vault's answers carry bundles without it, as the hosts serve them.
 */
async function setup() {
  const w = world();
  const mine = w.append(w.fleet({ vaultKey: fleet.vaultPublicKey() }));
  const other = w.append(w.fleet({ epoch: 2, vaultKey: new Uint8Array(32).fill(7) }));
  return {
    w,
    mine: await w.bundle(mine),
    mineBare: await w.bundle(mine, undefined, false),
    other: await w.bundle(other),
  };
}

/** The fleet's transport, with the operator choosing which bundle goes where. */
function transport(pre: BundleJson, attach: (r: VaultReply) => VaultReply) {
  const inner = fleet.transport();
  const t = {
    sent: 0,
    async bundle() {
      return pre;
    },
    async send(envelope: Uint8Array) {
      t.sent++;
      return attach(await inner.send(envelope));
    },
  } satisfies VaultTransport & { sent: number };
  return t;
}

const client = (user: string, pins: ReturnType<typeof world>["pins"], t: VaultTransport) =>
  new VaultClient({
    user,
    trust: { pins, checkpoints: memoryCheckpointStore() },
    transport: t,
    keyStretching: LIGHT,
    now: () => fleet.time,
  });

async function code(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => "ok",
    (err: unknown) => err,
  );
  return isBkvError(e) ? e.code : String(e);
}

describe("the vault client with trust pins", () => {
  it("registers and recovers through a verified bundle that comes back with every answer", async () => {
    const { w, mine, mineBare } = await setup();
    const t = transport(mine, (r) => ({ ...r, bundle: mineBare }));
    const c = client("ann", w.pins, t);
    await c.register("1234", KEY);
    expect((await c.recover("1234")).backupKey).toEqual(KEY);
    expect(t.sent).toBe(4);
  });

  it("sends nothing when the bundle fetched first does not verify", async () => {
    const { w, mine } = await setup();
    const t = transport({ ...mine, namespace: "someone-else" }, (r) => ({ ...r, bundle: mine }));
    expect(await code(client("bea", w.pins, t).register("1234", KEY))).toBe(ErrorCode.BundleNamespace);
    expect(t.sent).toBe(0);
  });

  it("refuses an answer without a bundle, and one whose valid bundle vouches for another fleet", async () => {
    const { w, mine, other } = await setup();
    const bare = transport(mine, (r) => ({ response: r.response }));
    expect(await code(client("cal", w.pins, bare).register("1234", KEY))).toBe(ErrorCode.BundleMissing);
    const swapped = transport(mine, (r) => ({ ...r, bundle: other }));
    expect(await code(client("dee", w.pins, swapped).register("1234", KEY))).toBe(ErrorCode.Untrusted);
    expect(swapped.sent).toBe(1);
  });
});

async function failure(p: Promise<unknown>): Promise<BkvError> {
  const e = await p.then(
    () => new Error("expected a failure"),
    (err: unknown) => err,
  );
  if (!(e instanceof BkvError)) throw e;
  return e;
}

/**
 * The operator's front end strips the bundle from (or swaps it on) chosen answers: `bad` holds the
 * numbers (1-based, counted over this transport's life) of the answers it spoils.
 */
function spoiling(
  mine: BundleJson,
  spoil: (r: VaultReply) => VaultReply = (r) => ({ response: r.response }),
) {
  const bad = new Set<number>();
  let n = 0;
  const t = transport(mine, (r) => (bad.has(++n) ? spoil(r) : { ...r, bundle: mine }));
  return { t, bad };
}

describe("a check between KE2 and KE3 never spends a guess", () => {
  it("a KE2 answer stripped of its bundle: the right PIN still finishes (count reset), then the bundle error", async () => {
    const { w, mine } = await setup();
    const { t, bad } = spoiling(mine);
    const c = client("fay", w.pins, t);
    await c.register("1234", KEY); // answers 1, 2
    bad.add(3); // the KE2 of the next login
    const e = await failure(c.recover("1234"));
    expect(e).toBeInstanceOf(AnswerBundleError);
    expect(e.code).toBe(ErrorCode.BundleMissing);
    expect(e.message).toMatch(/the login was finished .*the PIN was right \(the guess count is reset\)/);
    expect((e as AnswerBundleError).verdict).toBeUndefined();
    expect(t.sent).toBe(4); // KE3 went out
    // The right PIN's guess did not stay spent: a wrong PIN now finds limit - 1 left, not limit - 2.
    const wrong = await failure(c.recover("0000"));
    expect([wrong.code, wrong.guessesRemaining]).toEqual([ErrorCode.WrongPin, 9]);
    // And a second stripped right PIN resets it again.
    bad.add(7);
    expect(await code(c.recover("1234"))).toBe(ErrorCode.BundleMissing);
    expect((await failure(c.recover("0000"))).guessesRemaining).toBe(9);
    expect((await c.recover("1234")).backupKey).toEqual(KEY);
  });

  it("a wrong PIN with a stripped KE2: the HSM's sealed verdict is reported with the bundle error", async () => {
    const { w, mine } = await setup();
    const { t, bad } = spoiling(mine);
    const c = client("gus", w.pins, t);
    await c.register("1234", KEY);
    bad.add(3);
    const e = await failure(c.recover("9999"));
    expect(e).toBeInstanceOf(AnswerBundleError);
    expect(e.code).toBe(ErrorCode.BundleMissing);
    expect((e as AnswerBundleError).verdict?.code).toBe(ErrorCode.WrongPin);
    expect(e.guessesRemaining).toBe(9);
    expect(e.message).toMatch(/the PIN was wrong \(9 guesses remaining\)/);
    expect((await c.recover("1234")).backupKey).toEqual(KEY);
  });

  it("a KE2 answer whose valid bundle vouches for another fleet, or a stripped KE3 answer: finished first", async () => {
    const { w, mine, other } = await setup();
    const swapped = spoiling(mine, (r) => ({ ...r, bundle: other }));
    const c = client("hal", w.pins, swapped.t);
    await c.register("1234", KEY);
    swapped.bad.add(3);
    const e = await failure(c.recover("1234"));
    expect(e).toBeInstanceOf(AnswerBundleError);
    expect(e.code).toBe(ErrorCode.Untrusted);
    expect(swapped.t.sent).toBe(4);
    // That answer's bundle is a genuine, newer epoch: this client now follows it and refuses epoch 1.
    expect((await failure(c.recover("0000"))).code).toBe(ErrorCode.BundleRollback);
    expect(swapped.t.sent).toBe(4);
    // Another device, on epoch 1 still: the right PIN reset the count.
    const device2 = client("hal", w.pins, spoiling(mine).t);
    expect((await failure(device2.recover("0000"))).guessesRemaining).toBe(9);

    // The KE3 answer stripped: the login is done; K is not returned, the count is reset.
    const { t, bad } = spoiling(mine);
    const d = client("hal", w.pins, t);
    bad.add(2);
    const late = await failure(d.recover("1234"));
    expect(late).toBeInstanceOf(AnswerBundleError);
    expect(late.code).toBe(ErrorCode.BundleMissing);
    expect((await failure(d.recover("0000"))).guessesRemaining).toBe(9);
  });

  it("delete with a stripped KE2 answer finishes and says the record is deleted", async () => {
    const { w, mine } = await setup();
    const { t, bad } = spoiling(mine);
    const c = client("ida", w.pins, t);
    await c.register("1234", KEY);
    bad.add(3);
    const e = await failure(c.delete("1234"));
    expect(e).toBeInstanceOf(AnswerBundleError);
    expect(e.message).toMatch(/the record is deleted/);
    expect(await code(c.recover("1234"))).toBe(ErrorCode.NoRecord);
  });

  it("a registration whose first answer is stripped stops before the record is sent", async () => {
    const { w, mine } = await setup();
    const { t, bad } = spoiling(mine);
    bad.add(1);
    const e = await failure(client("jan", w.pins, t).register("1234", KEY));
    expect(e).toBeInstanceOf(AnswerBundleError);
    expect(e.message).toMatch(/no record was sent/);
    expect(t.sent).toBe(1);
    expect(await code(client("jan", w.pins, t).recover("1234"))).toBe(ErrorCode.NoRecord);
  });
});
