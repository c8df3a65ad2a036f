/**
 * The genesis ceremony as the operator would attack it, refused by the HSMs themselves: a member
 * with a forged attestation, a member running other code, a raised guess limit, a missing member
 * signature, another fleet's signatures, the same HSMs asked into a second fleet, a member restarted
 * part way, a saved package replayed, weak member keys (small-order or non-canonical Ed25519 keys, one
 * key under two encodings, a vendor signature made by no one, a P-256 key off the curve), and where
 * the fleet is published (namespace, epoch, log key) changed or invalid. A refusing HSM stores
 * nothing (no persist, NVRAM as before).
 */

import {
  decodeNvram,
  encodePackage,
  encodeRaftEntry,
  type Genesis,
  HsmCore,
  packageAad,
  packageKey,
  statementOf,
} from "@bkv/hsm-core";
import {
  attest,
  ed25519PublicKeyOf,
  ed25519SignWith,
  type MemoryHsm,
  type MemoryPlatformOptions,
  memoryPlatform,
  newMemoryHsm,
  newP256PrivateKey,
  newVendorRoot,
  p256Identity,
  TEST_MEASUREMENT,
  TEST_VENDOR,
} from "@bkv/hsm-software";
import {
  type AttestationBody,
  attestationSignedBytes,
  decodeAttestation,
  decodeHsmToHost,
  decodeStatement,
  ED25519_L,
  ErrorCode,
  encodeAttestation,
  encodeHostToHsm as encodeHostToHsmFrame,
  encodeStatement,
  type HostToHsm,
  type HsmToHost,
  toHex,
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
    return Hsm.onPlatform(mem, memoryPlatform(mem, opts));
  }

  /** A new core on a platform already open (the HSM's code restarted, its keys kept in memory). */
  static async onPlatform(mem: MemoryHsm, platform: ReturnType<typeof memoryPlatform>): Promise<Hsm> {
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

  private get bootedFrame() {
    const b = this.frames.find((f) => f.type === "booted");
    if (b?.type !== "booted") throw new Error("not booted");
    return b;
  }

  get attestation(): Uint8Array {
    return this.bootedFrame.identity;
  }

  get challenge(): Uint8Array {
    return this.bootedFrame.challenge;
  }

  /** Nothing was stored: no persist frame and an empty NVRAM. */
  storedNothing(): boolean {
    return !this.frames.some((f) => f.type === "persist") && this.mem.nvram === null;
  }

  /** The ceremony this HSM's NVRAM names (role and fleet id hex), or null for empty NVRAM. */
  ceremony(): { role: string; fleet: string; tip: number } | null {
    if (this.mem.nvram === null) return null;
    const nv = decodeNvram(this.mem.nvram);
    return { role: nv.ceremony.role, fleet: toHex(nv.ceremony.fleetId), tip: nv.tip.index };
  }

  persisted(): boolean {
    return this.frames.some((f) => f.type === "persist");
  }
}

/** The transparency log's key that these fleets are published under. */
const LOG_SEED = new Uint8Array(32).fill(0x42);
const LOG_KEY = ed25519PublicKeyOf(LOG_SEED);
/** The release key these fleets freeze for their successors' code. */
const RELEASE_KEY = ed25519PublicKeyOf(new Uint8Array(32).fill(0x52));
/** The log's witnesses these fleets freeze (cosignature/v1 keys), 2 of 2. */
const WITNESS_1 = { name: "witness.example/w1", key: ed25519PublicKeyOf(new Uint8Array(32).fill(0x57)) };
const WITNESS_2 = { name: "witness.example/w2", key: ed25519PublicKeyOf(new Uint8Array(32).fill(0x58)) };
const WITNESS_POLICY = { witnesses: [WITNESS_1, WITNESS_2], threshold: 2 };

/** The genesis-create frame for these HSMs, with each one's attestation and challenge. */
function createFrame(hsms: Hsm[], guessLimit = 10): HostToHsm & { type: "genesis-create" } {
  return {
    type: "genesis-create",
    members: hsms.map((h) => h.attestation),
    challenges: hsms.map((h) => h.challenge),
    guessLimit,
    namespace: "bkv-test",
    epoch: 1,
    logKey: LOG_KEY,
    releaseKey: RELEASE_KEY,
    maxSuccessorGuessLimit: guessLimit,
    witnessPolicy: WITNESS_POLICY,
  };
}

/** Little-endian 32 bytes of v. */
function le32(v: bigint): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

const P25519 = (1n << 255n) - 19n;
/** The identity point (order 1) and a point of order 8: keys for which forged signatures "verify". */
const IDENTITY = le32(1n);
const ORDER_8 = le32(0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n);

/** A genuine P-256 agreement key of no member. */
function p256Key(): Uint8Array {
  return p256Identity(newP256PrivateKey()).publicKey;
}

/** An attestation signed by the test vendor root (which every memory HSM trusts) for these keys. */
function attested(signKey: Uint8Array, agreeKey: Uint8Array = p256Key()): Uint8Array {
  return attest(TEST_VENDOR, body(signKey, agreeKey));
}

function body(signKey: Uint8Array, agreeKey: Uint8Array): AttestationBody {
  return {
    platform: "memory",
    vendor: "bkv test vendor root: in-memory HSM for tests",
    signKey,
    agreeKey,
    measurement: TEST_MEASUREMENT,
    properties: [],
  };
}

/** Genesis with these attestations as members 2 and 3 (member 1 the creator): refused by name, nothing stored. */
async function refusedMembers(m2: Uint8Array, m3: Uint8Array, code: string, words: string[]) {
  const hsms = await fleetOf(3);
  const frame = createFrame(hsms);
  const f = await hsms[0]!.send({ ...frame, members: [frame.members[0]!, m2, m3] });
  const r = refusal(f);
  expect(r.code, r.message).toBe(code);
  for (const w of words) expect(r.message).toContain(w);
  expect(hsms[0]!.storedNothing()).toBe(true);
  expect(hsms[0]!.frames.some((x) => x.type === "genesis-packages")).toBe(false);
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
  const f = await hsms[0]!.send(createFrame(hsms, guessLimit));
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
async function evilPackages(
  creator: Hsm,
  members: Uint8Array[],
  challenges: Uint8Array[],
  change: (g: Genesis) => Genesis,
) {
  await opaque.ready;
  const c = creator.platform.crypto;
  const seed = new Uint8Array(32).fill(7);
  const g = change({
    fleetId: new Uint8Array(16).fill(9),
    namespace: "bkv-test",
    epoch: 1,
    logKey: LOG_KEY,
    releaseKey: RELEASE_KEY,
    maxSuccessorGuessLimit: 10,
    witnessPolicy: WITNESS_POLICY,
    members,
    challenges,
    measurement: TEST_MEASUREMENT,
    opaqueServerSetup: opaque.server.createSetup(),
    hpkePrivateKey: new Uint8Array(32).fill(1),
    hpkePublicKey: new Uint8Array(32).fill(2),
    fleetSigningSeed: seed,
    fleetSigningKey: c.ed25519PublicKey(seed),
    guessLimit: 10,
    createdAt: Date.now(),
  });
  const entry = encodeRaftEntry({
    index: 1,
    term: 0,
    prevHash: new Uint8Array(32),
    time: g.createdAt,
    requestId: new Uint8Array(0),
    ops: [{ op: "genesis", genesis: g }],
  });
  const packages: Uint8Array[] = [];
  for (let member = 1; member <= members.length; member++) {
    const head = { fleetId: g.fleetId, creator: 1, member, members, challenge: challenges[member - 1]! };
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
    expect(st.challenges).toEqual(hsms.map((h) => h.challenge));
    const sigs = await joinAll(hsms, created);
    const fleet = toHex(st.fleetId);
    for (const [i, h] of hsms.entries()) {
      // Signing stores no log, only the one genesis this HSM takes part in, in its NVRAM.
      expect(h.persisted()).toBe(false);
      expect(h.ceremony()).toEqual({ role: i === 0 ? "creator" : "joiner", fleet, tip: 0 });
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
    const f = await hsms[0]!.send(createFrame(hsms));
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
      ...createFrame(hsms),
      members: [hsms[0]!.attestation, hsms[1]!.attestation, a],
    });
    expect(refusal(f).code).toBe(ErrorCode.Attestation);
  });

  it("refuses a member running other code, at creation and when joining", async () => {
    const other = new Uint8Array(32).fill(0xee);
    const hsms = await fleetOf(3, [undefined, { measurement: other }]);
    const f = await hsms[0]!.send(createFrame(hsms));
    expect(refusal(f).code).toBe(ErrorCode.Measurement);
    expect(refusal(f).message).toContain("member 2");

    // A creator running other code seals a fleet that lists it anyway: honest members refuse.
    const honest = await fleetOf(3);
    const odd = await Hsm.start({ measurement: other });
    const trio = [odd, honest[1]!, honest[2]!];
    const evil = await evilPackages(
      odd,
      trio.map((h) => h.attestation),
      trio.map((h) => h.challenge),
      (g) => g,
    );
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
    const f = await hsms[0]!.send(createFrame(hsms, 1000));
    expect(refusal(f).code).toBe(ErrorCode.Policy);

    const fresh = await fleetOf(3);
    const evil = await evilPackages(
      fresh[0]!,
      fresh.map((h) => h.attestation),
      fresh.map((h) => h.challenge),
      (g) => ({ ...g, guessLimit: 1_000_000 }),
    );
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
    expect(hsms[0]!.persisted()).toBe(false);

    const forged = sigs.map((s, i) => (i === 2 ? sigs[1]! : s));
    const g = await hsms[1]!.send({ type: "genesis-finish", signatures: forged });
    expect(refusal(g).code).toBe(ErrorCode.Signature);
    expect(refusal(g).message).toContain("member 3");
    expect(hsms[1]!.persisted()).toBe(false);
  });

  it("does not store the fleet with a member's signature under a second encoding (S + L)", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sigs[2]![i]!);
    const malleable = sigs[2]!.slice();
    malleable.set(le32(s + ED25519_L), 32);
    const f = await hsms[0]!.send({ type: "genesis-finish", signatures: [sigs[0]!, sigs[1]!, malleable] });
    expect(refusal(f).code).toBe(ErrorCode.Signature);
    expect(refusal(f).message).toContain("member 3");
    expect(refusal(f).message).toContain("not strict");
    expect(hsms[0]!.persisted()).toBe(false);
  });

  it("refuses another fleet's signatures (evidence of an old fleet presented for a new one)", async () => {
    const old = await fleetOf(3);
    const oldSigs = await joinAll(old, await create(old));
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    await joinAll(hsms, created);
    const f = await hsms[2]!.send({ type: "genesis-finish", signatures: oldSigs });
    expect(refusal(f).code).toBe(ErrorCode.Signature);
    expect(hsms[2]!.persisted()).toBe(false);
  });

  it("an HSM already in a fleet takes part in no other genesis", async () => {
    const hsms = await fleetOf(1);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    await hsms[0]!.send({ type: "genesis-finish", signatures: sigs });
    const again = await hsms[0]!.send(createFrame(hsms));
    expect(refusal(again).code).toBe(ErrorCode.GenesisSpent);
  });
});

describe("one genesis per HSM", () => {
  it("reports a fresh challenge at every boot while uninitialized, and none once a member", async () => {
    const mem = newMemoryHsm();
    const a = await Hsm.start({}, mem);
    expect(a.challenge).toHaveLength(32);
    const b = await Hsm.onPlatform(mem, a.platform);
    expect(b.challenge).toHaveLength(32);
    expect(b.challenge).not.toEqual(a.challenge);
    const created = await create([b]);
    const sigs = await joinAll([b], created);
    const p = await b.send({ type: "genesis-finish", signatures: sigs });
    if (p.type !== "persist") throw new Error("not persisted");
    await b.send({ type: "persisted", id: p.id });
    const last = b.frames.findLast((f) => f.type === "booted");
    expect(last?.type === "booted" && last.node === 1 && last.challenge.length === 0).toBe(true);
  });

  it("the creator refuses to create a second fleet or to join another, with nothing stored for it", async () => {
    const hsms = await fleetOf(3);
    const first = await create(hsms);
    const fleetA = toHex(decodeStatement(first.statement).fleetId);
    expect(hsms[0]!.ceremony()).toEqual({ role: "creator", fleet: fleetA, tip: 0 });
    const before = hsms[0]!.frames.length;
    const again = await hsms[0]!.send(createFrame(hsms));
    expect(refusal(again).code).toBe(ErrorCode.GenesisSpent);
    expect(refusal(again).message).toContain(fleetA);
    expect(hsms[0]!.frames.slice(before).some((f) => f.type === "genesis-packages")).toBe(false);
    expect(hsms[0]!.ceremony()).toEqual({ role: "creator", fleet: fleetA, tip: 0 });

    // Another HSM creates fleet B listing the creator of A (its current challenge): it will not join.
    const x = await Hsm.start();
    const fleetB = await x.send(createFrame([x, hsms[0]!, await Hsm.start()]));
    if (fleetB.type !== "genesis-packages") throw new Error("fleet B was not created");
    const join = await hsms[0]!.send({
      type: "genesis-join",
      package: fleetB.packages[1]!,
      statement: fleetB.statement,
    });
    expect(refusal(join).code).toBe(ErrorCode.GenesisSpent);
    expect(hsms[0]!.frames.some((f) => f.type === "genesis-signature")).toBe(false);
    expect(hsms[0]!.ceremony()).toEqual({ role: "creator", fleet: fleetA, tip: 0 });
  });

  it("a joiner that signed for one fleet refuses to sign or create another", async () => {
    const hsms = await fleetOf(3);
    const a = await create(hsms);
    await joinAll(hsms, a);
    const fleetA = toHex(decodeStatement(a.statement).fleetId);
    const joiner = hsms[1]!;
    // Fleet B lists the same joiner (same boot, same challenge): a second signature is refused.
    const x = await Hsm.start();
    const y = await Hsm.start();
    const b = await x.send(createFrame([x, joiner, y]));
    if (b.type !== "genesis-packages") throw new Error("fleet B was not created");
    const signaturesBefore = joiner.frames.filter((f) => f.type === "genesis-signature").length;
    const j = await joiner.send({ type: "genesis-join", package: b.packages[1]!, statement: b.statement });
    expect(refusal(j).code).toBe(ErrorCode.GenesisSpent);
    expect(joiner.frames.filter((f) => f.type === "genesis-signature")).toHaveLength(signaturesBefore);
    expect(joiner.ceremony()).toEqual({ role: "joiner", fleet: fleetA, tip: 0 });
    // And as the creator of B.
    const c = await joiner.send(createFrame([joiner, x, y]));
    expect(refusal(c).code).toBe(ErrorCode.GenesisSpent);
    expect(joiner.ceremony()).toEqual({ role: "joiner", fleet: fleetA, tip: 0 });
    expect(joiner.persisted()).toBe(false);
  });

  it("a member restarted between join and finish is spent: it neither finishes nor rejoins", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    const fleet = toHex(decodeStatement(created.statement).fleetId);
    // Member 3's HSM restarts (same keys: its NVRAM names the ceremony).
    const again = await Hsm.start({}, hsms[2]!.mem);
    expect(await again.platform.identity()).toEqual(hsms[2]!.attestation);
    const booted = again.frames.at(-1)!;
    expect(refusal(booted).code).toBe(ErrorCode.GenesisSpent);
    expect(refusal(booted).message).toContain(fleet);
    const fin = await again.send({ type: "genesis-finish", signatures: sigs });
    expect(fin.type).toBe("failed");
    const rejoin = await again.send({
      type: "genesis-join",
      package: created.packages[2]!,
      statement: created.statement,
    });
    expect(rejoin.type).toBe("failed");
    expect(again.persisted()).toBe(false);
    expect(again.ceremony()).toEqual({ role: "joiner", fleet, tip: 0 });
    // The creator restarted after create: spent too.
    const creator = await Hsm.start({}, hsms[0]!.mem);
    expect(refusal(creator.frames.at(-1)!).code).toBe(ErrorCode.GenesisSpent);
  });

  it("a package answers one boot: the same HSM's core restarted (same keys) refuses its saved package", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    // Member 2's code restarts on the same platform: same identity, new challenge, no NVRAM yet.
    const restarted = await Hsm.onPlatform(hsms[1]!.mem, hsms[1]!.platform);
    expect(restarted.attestation).toEqual(hsms[1]!.attestation);
    expect(restarted.challenge).not.toEqual(hsms[1]!.challenge);
    const j = await restarted.send({
      type: "genesis-join",
      package: created.packages[1]!,
      statement: created.statement,
    });
    expect(refusal(j).code).toBe(ErrorCode.GenesisChallenge);
    expect(restarted.storedNothing()).toBe(true);
    expect(restarted.frames.some((f) => f.type === "genesis-signature")).toBe(false);
  });

  it("NVRAM wiped after the fleet formed: a new identity and challenge, and the saved package is refused", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const sigs = await joinAll(hsms, created);
    for (const h of hsms)
      expect((await h.send({ type: "genesis-finish", signatures: sigs })).type).toBe("persist");
    const mem = hsms[1]!.mem;
    mem.nvram = null;
    const wiped = await Hsm.start({}, mem);
    expect(wiped.frames.at(-1)?.type).toBe("booted");
    expect(wiped.attestation).not.toEqual(hsms[1]!.attestation);
    const j = await wiped.send({
      type: "genesis-join",
      package: created.packages[1]!,
      statement: created.statement,
    });
    expect(refusal(j).code).toBe(ErrorCode.GenesisChallenge);
    expect(wiped.storedNothing()).toBe(true);
  });

  it("the creator checks the challenges: its own must be this boot's, one per member, 32 bytes, no repeats", async () => {
    const hsms = await fleetOf(3);
    const frame = createFrame(hsms);
    const stale = new Uint8Array(32).fill(1);
    const cases: Uint8Array[][] = [
      [stale, frame.challenges[1]!, frame.challenges[2]!],
      frame.challenges.slice(0, 2),
      [frame.challenges[0]!, frame.challenges[1]!, new Uint8Array(16)],
      [frame.challenges[0]!, frame.challenges[1]!, frame.challenges[1]!],
    ];
    for (const challenges of cases) {
      const h = await Hsm.start();
      const members = [h.attestation, ...frame.members.slice(1)];
      const mine = challenges === cases[0] ? challenges : [h.challenge, ...challenges.slice(1)];
      const f = await h.send({ ...createFrame([h]), members, challenges: mine });
      expect(refusal(f).code).toBe(ErrorCode.GenesisChallenge);
      expect(h.storedNothing()).toBe(true);
    }
  });
});

describe("strict member keys", () => {
  it("refuses a member whose signing key has small order (forged statement signatures would verify)", async () => {
    for (const key of [IDENTITY, ORDER_8]) {
      await refusedMembers(
        attested(IDENTITY === key ? ORDER_8 : IDENTITY),
        attested(key),
        ErrorCode.Attestation,
        ["member 2", "small order"],
      );
    }
  });

  it("refuses one key under two encodings as two members (a non-canonical encoding)", async () => {
    // y = 3 is a point; y + p fits in 255 bits: the same point, encoded twice.
    const canonical = le32(3n);
    const again = le32(3n + P25519);
    expect(again).not.toEqual(canonical);
    await refusedMembers(attested(canonical), attested(again), ErrorCode.Attestation, [
      "member 3",
      "non-canonical",
    ]);
    // The sign bit set on x = 0 (the identity's other encoding) is refused as well.
    const negZero = IDENTITY.slice();
    negZero[31]! |= 0x80;
    const hsms = await fleetOf(2);
    await refusedMembers(hsms[1]!.attestation, attested(negZero), ErrorCode.Attestation, ["member 3"]);
  });

  it("refuses a vendor signature that is not strict: R of small order under a small-order root, S not below L", async () => {
    // An HSM that (wrongly) trusts a small-order "root": R = identity, S = 0 verifies for any message.
    const hsms = await fleetOf(3, [{ vendorRoots: [TEST_VENDOR.publicKey, IDENTITY] }]);
    const forgedSig = new Uint8Array(64);
    forgedSig.set(IDENTITY, 0);
    const forged = encodeAttestation({
      ...body(decodeAttestation(hsms[2]!.attestation).signKey, p256Key()),
      signature: forgedSig,
    });
    const frame = createFrame(hsms);
    const f = await hsms[0]!.send({ ...frame, members: [frame.members[0]!, frame.members[1]!, forged] });
    expect(refusal(f).code).toBe(ErrorCode.Attestation);
    expect(refusal(f).message).toContain("member 3");
    expect(hsms[0]!.storedNothing()).toBe(true);

    // A genuine vendor signature with S + L: the same signature under a second encoding.
    const other = await Hsm.start();
    const b = body(decodeAttestation(other.attestation).signKey, p256Key());
    const sig = ed25519SignWith(TEST_VENDOR.seed, attestationSignedBytes(b));
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
    const malleable = sig.slice();
    malleable.set(le32(s + ED25519_L), 32);
    const twins = await fleetOf(2);
    await refusedMembers(
      twins[1]!.attestation,
      encodeAttestation({ ...b, signature: malleable }),
      ErrorCode.Attestation,
      ["member 3", "not strict"],
    );
  });

  it("refuses an agreement key that is not a P-256 point (off the curve, or a coordinate not below p)", async () => {
    const good = p256Key();
    const offCurve = good.slice();
    offCurve[64]! ^= 1;
    const bigX = good.slice();
    bigX.fill(0xff, 1, 33);
    for (const agreeKey of [offCurve, bigX]) {
      const other = await Hsm.start();
      const hsms = await fleetOf(2);
      await refusedMembers(
        hsms[1]!.attestation,
        attested(decodeAttestation(other.attestation).signKey, agreeKey),
        ErrorCode.Attestation,
        ["member 3", "agreement key"],
      );
    }
  });
});

describe("where the fleet is published", () => {
  it("the statement names the namespace, the epoch and the log key of the genesis-create frame", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const st = decodeStatement(created.statement);
    expect(st.namespace).toBe("bkv-test");
    expect(st.epoch).toBe(1);
    expect(st.logKey).toEqual(LOG_KEY);
  });

  it("refuses an empty or overlong namespace and a log key that is no strict Ed25519 point", async () => {
    const cases: [Partial<HostToHsm & { type: "genesis-create" }>, string][] = [
      [{ namespace: "" }, "namespace"],
      [{ namespace: "n".repeat(256) }, "namespace"],
      [{ logKey: IDENTITY }, "small order"],
      [{ logKey: ORDER_8 }, "small order"],
      [{ logKey: le32(3n + P25519) }, "non-canonical"],
      [{ logKey: LOG_KEY.subarray(0, 31) }, "32 bytes"],
    ];
    for (const [change, words] of cases) {
      const hsms = await fleetOf(1);
      const f = await hsms[0]!.send({ ...createFrame(hsms), ...change });
      expect(refusal(f).code).toBe(ErrorCode.Invalid);
      expect(refusal(f).message).toContain(words);
      expect(hsms[0]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a statement whose namespace, epoch or log key differ from its sealed entry", async () => {
    const edits: [string, (st: ReturnType<typeof decodeStatement>) => Uint8Array][] = [
      ["namespace", (st) => encodeStatement({ ...st, namespace: "elsewhere" })],
      ["epoch", (st) => encodeStatement({ ...st, epoch: 2 })],
      ["log key", (st) => encodeStatement({ ...st, logKey: ed25519PublicKeyOf(new Uint8Array(32).fill(1)) })],
    ];
    for (const [what, edit] of edits) {
      const hsms = await fleetOf(3);
      const created = await create(hsms);
      const statement = edit(decodeStatement(created.statement));
      const j = await hsms[1]!.send({ type: "genesis-join", package: created.packages[1]!, statement });
      expect(refusal(j).code).toBe(ErrorCode.Invalid);
      expect(refusal(j).message).toContain(what);
      expect(hsms[1]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a rogue creator's entry frozen to a log key that is no strict point", async () => {
    const hsms = await fleetOf(3);
    const evil = await evilPackages(
      hsms[0]!,
      hsms.map((h) => h.attestation),
      hsms.map((h) => h.challenge),
      (g) => ({ ...g, logKey: IDENTITY }),
    );
    const j = await hsms[1]!.send({
      type: "genesis-join",
      package: evil.packages[1]!,
      statement: evil.statement,
    });
    expect(refusal(j).code).toBe(ErrorCode.Invalid);
    expect(refusal(j).message).toContain("log key");
    expect(hsms[1]!.storedNothing()).toBe(true);
  });
});

function findSub(hay: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= hay.length; i++) {
    if (needle.every((x, j) => hay[i + j] === x)) return i;
  }
  throw new Error("not found");
}

describe("what the fleet accepts of a successor (docs/migration.md §2)", () => {
  it("the statement freezes the release key and the highest successor guess limit of the genesis-create frame", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    const st = decodeStatement(created.statement);
    expect(st.releaseKey).toEqual(RELEASE_KEY);
    expect(st.maxSuccessorGuessLimit).toBe(10);
    const lower = await fleetOf(1);
    const f = await lower[0]!.send({ ...createFrame(lower, 6), maxSuccessorGuessLimit: 4 });
    if (f.type !== "genesis-packages") throw new Error(`expected packages, got ${f.type}`);
    expect(decodeStatement(f.statement)).toMatchObject({
      maxSuccessorGuessLimit: 4,
      policy: { guessLimit: 6 },
    });
  });

  it("refuses a release key that is no strict Ed25519 point, and nothing is stored", async () => {
    const cases: [Uint8Array, string][] = [
      [IDENTITY, "small order"],
      [ORDER_8, "small order"],
      [le32(3n + P25519), "non-canonical"],
      [RELEASE_KEY.subarray(0, 31), "32 bytes"],
      [new Uint8Array(33).fill(0x52), "32 bytes"],
    ];
    for (const [releaseKey, words] of cases) {
      const hsms = await fleetOf(1);
      const f = await hsms[0]!.send({ ...createFrame(hsms), releaseKey });
      expect(refusal(f).code).toBe(ErrorCode.Invalid);
      expect(refusal(f).message).toContain("release key");
      expect(refusal(f).message).toContain(words);
      expect(hsms[0]!.storedNothing()).toBe(true);
    }
  });

  it("refuses a successor guess limit above the fleet's own, or of zero, and nothing is stored", async () => {
    // The operator asks for a fleet whose successors may give each record more guesses than it does.
    for (const [max, words] of [
      [11, "above the fleet's own guess limit 10"],
      [0, "at least 1"],
    ] as const) {
      const hsms = await fleetOf(1);
      const f = await hsms[0]!.send({ ...createFrame(hsms, 10), maxSuccessorGuessLimit: max });
      expect(refusal(f).code).toBe(ErrorCode.Policy);
      expect(refusal(f).message).toContain(words);
      expect(hsms[0]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a statement whose release key or successor limit differ from its sealed entry", async () => {
    const edits: [string, ErrorCode, (st: ReturnType<typeof decodeStatement>) => Uint8Array][] = [
      [
        "release key",
        ErrorCode.Invalid,
        (st) => encodeStatement({ ...st, releaseKey: ed25519PublicKeyOf(new Uint8Array(32).fill(1)) }),
      ],
      ["policy", ErrorCode.Policy, (st) => encodeStatement({ ...st, maxSuccessorGuessLimit: 9 })],
    ];
    for (const [what, code, edit] of edits) {
      const hsms = await fleetOf(3);
      const created = await create(hsms);
      const statement = edit(decodeStatement(created.statement));
      const j = await hsms[1]!.send({ type: "genesis-join", package: created.packages[1]!, statement });
      expect(refusal(j).code).toBe(code);
      expect(refusal(j).message).toContain(what);
      expect(hsms[1]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a rogue creator's entry with a bad release key or a successor limit above its own", async () => {
    const cases: [(g: Genesis) => Genesis, ErrorCode, string][] = [
      [(g) => ({ ...g, releaseKey: IDENTITY }), ErrorCode.Invalid, "release key"],
      [
        (g) => ({ ...g, maxSuccessorGuessLimit: g.guessLimit + 1 }),
        ErrorCode.Policy,
        "maximum successor guess limit",
      ],
      [(g) => ({ ...g, maxSuccessorGuessLimit: 0 }), ErrorCode.Policy, "at least 1"],
    ];
    for (const [change, code, words] of cases) {
      const hsms = await fleetOf(3);
      const evil = await evilPackages(
        hsms[0]!,
        hsms.map((h) => h.attestation),
        hsms.map((h) => h.challenge),
        change,
      );
      const j = await hsms[1]!.send({
        type: "genesis-join",
        package: evil.packages[1]!,
        statement: evil.statement,
      });
      expect(refusal(j).code).toBe(code);
      expect(refusal(j).message).toContain(words);
      expect(hsms[1]!.storedNothing()).toBe(true);
    }
  });
});

describe("the witness policy the fleet checks its successor's log entries under (genesis statement v5)", () => {
  it("the statement and the genesis entry freeze the witness policy of the genesis-create frame", async () => {
    const hsms = await fleetOf(3);
    const created = await create(hsms);
    expect(decodeStatement(created.statement).witnessPolicy).toEqual(WITNESS_POLICY);
    const one = await fleetOf(1);
    const f = await one[0]!.send({
      ...createFrame(one),
      witnessPolicy: { witnesses: [WITNESS_2], threshold: 1 },
    });
    if (f.type !== "genesis-packages") throw new Error(`expected packages, got ${f.type}`);
    expect(decodeStatement(f.statement).witnessPolicy).toEqual({ witnesses: [WITNESS_2], threshold: 1 });
  });

  it("refuses at create a policy with threshold 0 or above its witnesses, a key or name twice, the log key as a witness, a weak key; nothing is stored", async () => {
    const cases: [typeof WITNESS_POLICY, string][] = [
      [{ ...WITNESS_POLICY, threshold: 0 }, "threshold must be 1 to 2"],
      [{ ...WITNESS_POLICY, threshold: 3 }, "threshold must be 1 to 2"],
      [{ witnesses: [], threshold: 0 }, "names 0 witnesses"],
      [{ witnesses: [WITNESS_1, { ...WITNESS_1, name: "witness.example/w1-again" }], threshold: 1 }, "twice"],
      [
        { witnesses: [WITNESS_1, { ...WITNESS_2, name: WITNESS_1.name }], threshold: 1 },
        "two witness keys are named",
      ],
      [{ witnesses: [{ name: "the-log", key: LOG_KEY }], threshold: 1 }, "the log's own key"],
      [{ witnesses: [{ name: "weak", key: IDENTITY }], threshold: 1 }, "small order"],
      [{ witnesses: [{ name: "short", key: WITNESS_1.key.subarray(0, 31) }], threshold: 1 }, "32"],
      [{ witnesses: [{ name: "has space", key: WITNESS_1.key }], threshold: 1 }, "key name"],
    ];
    for (const [witnessPolicy, words] of cases) {
      const hsms = await fleetOf(1);
      const f = await hsms[0]!.send({ ...createFrame(hsms), witnessPolicy });
      expect(refusal(f).code).toBe(ErrorCode.Invalid);
      expect(refusal(f).message).toContain(words);
      expect(hsms[0]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a statement whose witness policy differs from its sealed entry", async () => {
    // The host hands a member a statement naming other witnesses (or another threshold) than the
    // creator's frame did: the member signs nothing.
    const edits: ((st: ReturnType<typeof decodeStatement>) => Uint8Array)[] = [
      (st) => encodeStatement({ ...st, witnessPolicy: { witnesses: [WITNESS_1], threshold: 1 } }),
      (st) => encodeStatement({ ...st, witnessPolicy: { ...st.witnessPolicy, threshold: 1 } }),
      (st) =>
        encodeStatement({
          ...st,
          witnessPolicy: {
            witnesses: [
              WITNESS_1,
              { name: "operator.example/w", key: ed25519PublicKeyOf(new Uint8Array(32).fill(3)) },
            ],
            threshold: 2,
          },
        }),
    ];
    for (const edit of edits) {
      const hsms = await fleetOf(3);
      const created = await create(hsms);
      const statement = edit(decodeStatement(created.statement));
      const j = await hsms[1]!.send({ type: "genesis-join", package: created.packages[1]!, statement });
      expect(refusal(j).code).toBe(ErrorCode.Invalid);
      expect(refusal(j).message).toContain("witness policy");
      expect(hsms[1]!.storedNothing()).toBe(true);
    }
  });

  it("a joiner refuses a rogue creator's entry whose witness policy cannot be frozen", async () => {
    const cases: [(g: Genesis) => Genesis, string][] = [
      [(g) => ({ ...g, witnessPolicy: { ...g.witnessPolicy, threshold: 0 } }), "threshold"],
      [
        (g) => ({ ...g, witnessPolicy: { witnesses: [{ name: "log", key: LOG_KEY }], threshold: 1 } }),
        "log's own key",
      ],
      [(g) => ({ ...g, witnessPolicy: { witnesses: [WITNESS_1, WITNESS_1], threshold: 1 } }), "twice"],
    ];
    for (const [change, words] of cases) {
      const hsms = await fleetOf(3);
      const evil = await evilPackages(
        hsms[0]!,
        hsms.map((h) => h.attestation),
        hsms.map((h) => h.challenge),
        change,
      );
      const j = await hsms[1]!.send({
        type: "genesis-join",
        package: evil.packages[1]!,
        statement: evil.statement,
      });
      expect(refusal(j).code).toBe(ErrorCode.Invalid);
      expect(refusal(j).message).toContain(words);
      expect(hsms[1]!.storedNothing()).toBe(true);
    }
  });
});
