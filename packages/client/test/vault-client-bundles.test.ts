/**
 * The vault client with trust pins, against a real in-process fleet: it learns the vault key only
 * from a verified bundle, sends nothing when the bundle fails, and refuses an answer that comes
 * without a bundle or with a (valid) bundle vouching for another fleet than the one it sealed to.
 */
import { memoryCheckpointStore, VaultClient, type VaultReply, type VaultTransport } from "@bkv/client";
import { SimFleet } from "@bkv/sim";
import { type BundleJson, ErrorCode, isBkvError } from "@bkv/wire";
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
