/**
 * The genesis ceremony as the operator would attack it, refused by the HSMs themselves: a member
 * with a forged attestation, a member running other code, a raised guess limit, a missing member
 * signature, another fleet's signatures. A refusing HSM stores nothing (no persist, empty NVRAM).
 */

import {
  encodeEntry,
  encodePackage,
  type Genesis,
  HsmCore,
  packageAad,
  packageKey,
  statementOf,
} from "@bkv/hsm-core";
import {
  type MemoryHsm,
  type MemoryPlatformOptions,
  memoryPlatform,
  newMemoryHsm,
  newVendorRoot,
  TEST_MEASUREMENT,
} from "@bkv/hsm-software";
import {
  decodeAttestation,
  decodeHsmToHost,
  decodeStatement,
  ErrorCode,
  encodeHostToHsm as encodeHostToHsmFrame,
  encodeStatement,
  type HostToHsm,
  type HsmToHost,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";

class Hsm {
  frames: HsmToHost[] = [];
  private constructor(
    readonly mem: MemoryHsm,
    readonly core: HsmCore,
    readonly platform: ReturnType<typeof memoryPlatform>,
  ) {}

  static async start(opts: MemoryPlatformOptions = {}, mem = newMemoryHsm()): Promise<Hsm> {
    const platform = memoryPlatform(mem, opts);
    const frames: HsmToHost[] = [];
    const core = await HsmCore.create(platform, (b) => frames.push(decodeHsmToHost(b)));
    const h = new Hsm(mem, core, platform);
    h.frames = frames;
    await h.send({ type: "boot", snapshot: null, entries: [] });
    return h;
  }

  async send(m: HostToHsm): Promise<HsmToHost> {
    const before = this.frames.length;
    await this.core.receive(encodeHostToHsmFrame(m));
    const out = this.frames.slice(before);
    return out[out.length - 1]!;
  }

  get attestation(): Uint8Array {
    const b = this.frames.find((f) => f.type === "booted");
    if (b?.type !== "booted") throw new Error("not booted");
    return b.identity;
  }

  /** Nothing was stored: no persist frame and an empty NVRAM. */
  storedNothing(): boolean {
    return !this.frames.some((f) => f.type === "persist") && this.mem.nvram === null;
  }
}

function refusal(f: HsmToHost): { code: string; message: string } {
  expect(f.type).toBe("failed");
  if (f.type !== "failed") throw new Error("unreachable");
  return f;
}

async function fleetOf(n: number, opts: (MemoryPlatformOptions | undefined)[] = []): Promise<Hsm[]> {
  const out: Hsm[] = [];
  for (let i = 0; i < n; i++) out.push(await Hsm.start(opts[i] ?? {}));
  return out;
}

async function create(hsms: Hsm[], guessLimit = 10) {
  const f = await hsms[0]!.send({
    type: "genesis-create",
    members: hsms.map((h) => h.attestation),
    guessLimit,
  });
  if (f.type !== "genesis-packages") throw new Error(`create refused: ${JSON.stringify(f)}`);
  return f;
}

async function joinAll(hsms: Hsm[], created: { statement: Uint8Array; packages: Uint8Array[] }) {
  const sigs: Uint8Array[] = [];
  for (const [i, h] of hsms.entries()) {
    const f = await h.send({
      type: "genesis-join",
      package: created.packages[i]!,
      statement: created.statement,
    });
    if (f.type !== "genesis-signature") throw new Error(`join refused: ${JSON.stringify(f)}`);
    sigs.push(f.signature);
  }
  return sigs;
}

/**
 * What a creator running other code could seal: a genesis entry of its choosing, sealed to the
 * members with the creator HSM's own agreement key (the test holds that HSM's platform).
 */
async function evilPackages(creator: Hsm, members: Uint8Array[], change: (g: Genesis) => Genesis) {
  await opaque.ready;
  const c = creator.platform.crypto;
  const seed = new Uint8Array(32).fill(7);
  const g = change({
    fleetId: new Uint8Array(16).fill(9),
    members,
    measurement: TEST_MEASUREMENT,
    opaqueServerSetup: opaque.server.createSetup(),
    hpkePrivateKey: new Uint8Array(32).fill(1),
    hpkePublicKey: new Uint8Array(32).fill(2),
    fleetSigningSeed: seed,
    fleetSigningKey: c.ed25519PublicKey(seed),
    guessLimit: 10,
    createdAt: Date.now(),
  });
  const entry = encodeEntry({
    index: 1,
    term: 0,
    prevHash: new Uint8Array(32),
    time: g.createdAt,
    requestId: new Uint8Array(0),
    ops: [{ op: "genesis", genesis: g }],
  });
  const packages: Uint8Array[] = [];
  for (let member = 1; member <= members.length; member++) {
    const head = { fleetId: g.fleetId, creator: 1, member, members };
    const shared = await creator.platform.identityAgree(decodeAttestation(members[member - 1]!).agreeKey);
    const key = packageKey(c, shared, g.fleetId, 1, member);
    const nonce = new Uint8Array(12).fill(member);
    packages.push(
      encodePackage({ ...head, nonce, ciphertext: await c.aeadSeal(key, nonce, entry, packageAad(head)) }),
    );
  }
  return { statement: encodeStatement(statementOf(g)), packages };
}

describe("genesis ceremony", () => {
  it("forms a fleet: every member signs the same statement and stores the genesis only with all signatures", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const st = decodeStatement(created.statement);
    expect(st.members).toHaveLength(3);
    expect(st.policy).toEqual({ guessLimit: 10, n: 3, quorum: 2 });
    expect(st.measurement).toEqual(TEST_MEASUREMENT);
    const sigs = await joinAll(hsms, created);
    for (const [i, h] of hsms.entries()) {
      expect(h.storedNothing()).toBe(true); // signing alone stores nothing
      expect(h.platform.crypto.ed25519Verify(st.members[i]!.signKey, created.statement, sigs[i]!)).toBe(true);
    }
    for (const h of hsms) {
      const f = await h.send({ type: "genesis-finish", signatures: sigs });
      expect(f.type).toBe("persist");
    }
  });

  it("refuses a member whose attestation is not signed by a trusted vendor root", async () => {
    const rogue = newVendorRoot();
    const hsms = await fleetOf(3, [undefined, undefined, { vendor: rogue }]);
    const f = await hsms[0]!.send({
      type: "genesis-create",
      members: hsms.map((h) => h.attestation),
      guessLimit: 10,
    });
    expect(refusal(f).code).toBe(ErrorCode.Attestation);
    expect(refusal(f).message).toContain("member 3");
    expect(hsms[0]!.storedNothing()).toBe(true);
  });

  it("refuses an attestation altered after signing (keys swapped in)", async () => {
    const hsms = await fleetOf(3);
    const other = await Hsm.start();
    const a = hsms[2]!.attestation.slice();
    const b = other.attestation;
    // Put another HSM's signing key into member 3's attestation: its vendor signature breaks.
    const at = decodeAttestation(a);
    const keyAt = findSub(a, at.signKey);
    a.set(decodeAttestation(b).signKey, keyAt);
    const f = await hsms[0]!.send({
      type: "genesis-create",
      members: [hsms[0]!.attestation, hsms[1]!.attestation, a],
      guessLimit: 10,
    });
    expect(refusal(f).code).toBe(ErrorCode.Attestation);
  });

  it("refuses a member running other code, at creation and when joining", async () => {
    const other = new Uint8Array(32).fill(0xee);
    const hsms = await fleetOf(3, [undefined, { measurement: other }]);
    const f = await hsms[0]!.send({
      type: "genesis-create",
      members: hsms.map((h) => h.attestation),
      guessLimit: 10,
    });
    expect(refusal(f).code).toBe(ErrorCode.Measurement);
    expect(refusal(f).message).toContain("member 2");

    // A creator running other code seals a fleet that lists it anyway: honest members refuse.
    const honest = await fleetOf(3);
    const odd = await Hsm.start({ measurement: other });
    const members = [odd.attestation, honest[1]!.attestation, honest[2]!.attestation];
    const evil = await evilPackages(odd, members, (g) => g);
    const j = await honest[1]!.send({
      type: "genesis-join",
      package: evil.packages[1]!,
      statement: evil.statement,
    });
    expect(refusal(j).code).toBe(ErrorCode.Measurement);
    expect(honest[1]!.storedNothing()).toBe(true);
  });

  it("refuses a raised guess limit: above the code's maximum, sealed by a rogue creator, or edited into the statement", async () => {
    const hsms = await fleetOf(3);
    const f = await hsms[0]!.send({
      type: "genesis-create",
      members: hsms.map((h) => h.attestation),
      guessLimit: 1000,
    });
    expect(refusal(f).code).toBe(ErrorCode.Policy);

    const fresh = await fleetOf(3);
    const members = fresh.map((h) => h.attestation);
    const evil = await evilPackages(fresh[0]!, members, (g) => ({ ...g, guessLimit: 1_000_000 }));
    const j = await fresh[1]!.send({
      type: "genesis-join",
      package: evil.packages[1]!,
      statement: evil.statement,
    });
    expect(refusal(j).code).toBe(ErrorCode.Policy);

    // An honest package, but the operator shows the member a statement with a higher limit.
    const third = await fleetOf(3);
    const created = await create(third);
    const st = decodeStatement(created.statement);
    const raised = encodeStatement({ ...st, policy: { ...st.policy, guessLimit: 50 } });
    const k = await third[1]!.send({
      type: "genesis-join",
      package: created.packages[1]!,
      statement: raised,
    });
    expect(refusal(k).code).toBe(ErrorCode.Policy);
    expect(third[1]!.storedNothing()).toBe(true);
  });

  it("does not store the fleet while a member's signature is missing or forged", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    const f = await hsms[0]!.send({ type: "genesis-finish", signatures: sigs.slice(0, 2) });
    expect(refusal(f).code).toBe(ErrorCode.Signature);
    expect(hsms[0]!.storedNothing()).toBe(true);

    const forged = sigs.map((s, i) => (i === 2 ? sigs[1]! : s));
    const g = await hsms[1]!.send({ type: "genesis-finish", signatures: forged });
    expect(refusal(g).code).toBe(ErrorCode.Signature);
    expect(refusal(g).message).toContain("member 3");
    expect(hsms[1]!.storedNothing()).toBe(true);
  });

  it("refuses another fleet's signatures (evidence of an old fleet presented for a new one)", async () => {
    const old = await fleetOf(3);
    const oldSigs = await joinAll(old, await create(old));
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    await joinAll(hsms, created);
    const f = await hsms[2]!.send({ type: "genesis-finish", signatures: oldSigs });
    expect(refusal(f).code).toBe(ErrorCode.Signature);
    expect(hsms[2]!.storedNothing()).toBe(true);
  });

  it("an HSM already in a fleet takes part in no other genesis", async () => {
    const hsms = await fleetOf(1);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    await hsms[0]!.send({ type: "genesis-finish", signatures: sigs });
    const again = await hsms[0]!.send({
      type: "genesis-create",
      members: [hsms[0]!.attestation],
      guessLimit: 10,
    });
    expect(refusal(again).code).toBe(ErrorCode.Invalid);
  });
});

function findSub(hay: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= hay.length; i++) {
    if (needle.every((x, j) => hay[i + j] === x)) return i;
  }
  throw new Error("not found");
}
