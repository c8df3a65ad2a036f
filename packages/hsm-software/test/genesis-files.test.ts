/**
 * One genesis per HSM on the software platform (keys and NVRAM in files), through the real core:
 * the operator wipes a member's NVRAM and storage and replays its saved genesis package, boots it on
 * an old copy of its storage, or restarts a member between join and finish. Each is refused by name
 * and stores nothing.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HsmCore, type HsmPlatform } from "@bkv/hsm-core";
import {
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  type HostToHsm,
  type HsmToHost,
  type SealedEntry,
} from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import { ed25519PublicKeyOf, newVendorRoot, provisionSoftwareHsm, softwarePlatform } from "../src/index.js";
import { NvramFile } from "../src/nvram-file.js";

/** Where these fleets are published (genesis freezes it): a namespace, an epoch and a log key. */
const PUBLISHED = {
  namespace: "bkv-test",
  epoch: 1,
  logKey: ed25519PublicKeyOf(new Uint8Array(32).fill(0x42)),
  releaseKey: ed25519PublicKeyOf(new Uint8Array(32).fill(0x52)),
  maxSuccessorGuessLimit: 10,
  witnessPolicy: {
    witnesses: [{ name: "bkv-test/witness", key: ed25519PublicKeyOf(new Uint8Array(32).fill(0x57)) }],
    threshold: 1,
  },
};

const vendor = newVendorRoot();
const measurement = new Uint8Array(createHash("sha256").update("bkv genesis files test core").digest());
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** One HSM process: a software platform on its folder and a core, with its host's storage. */
class Member {
  frames: HsmToHost[] = [];
  core!: HsmCore;
  stored: SealedEntry[] = [];
  constructor(readonly dir: string) {}

  async start(): Promise<HsmToHost> {
    // Provisioned before each start, as bkv dev does: new keys (NVRAM wiped) get a new attestation.
    provisionSoftwareHsm({ dir: this.dir, vendor, measurement });
    const platform: HsmPlatform = softwarePlatform({ dir: this.dir, measurement });
    this.frames = [];
    this.core = await HsmCore.create(platform, (b) => this.frames.push(decodeHsmToHost(b)));
    return this.send({ type: "boot", snapshot: null, entries: this.stored });
  }

  async send(m: HostToHsm): Promise<HsmToHost> {
    const before = this.frames.length;
    await this.core.receive(encodeHostToHsm(m));
    // Peer frames (a new member's hellos to the others) and Wake hints are not answers to the host.
    const last = this.frames
      .slice(before)
      .filter((f) => f.type !== "peer" && f.type !== "wake")
      .at(-1);
    if (last === undefined) throw new Error(`no answer to ${m.type}`);
    return last;
  }

  get booted(): HsmToHost & { type: "booted" } {
    const b = this.frames.find((f) => f.type === "booted");
    if (b?.type !== "booted") throw new Error(`not booted: ${JSON.stringify(this.frames.at(-1))}`);
    return b;
  }

  nvram(): Uint8Array | null {
    const f = new NvramFile(join(this.dir, "nvram.bin"));
    try {
      return f.read();
    } finally {
      f.close();
    }
  }
}

async function members(n: number): Promise<Member[]> {
  const root = mkdtempSync(join(tmpdir(), "bkv-genesis-files-"));
  dirs.push(root);
  const out: Member[] = [];
  for (let i = 1; i <= n; i++) {
    const m = new Member(join(root, `node-${i}`, "hsm"));
    expect((await m.start()).type).toBe("booted");
    out.push(m);
  }
  return out;
}

async function createAndJoin(ms: Member[]) {
  const created = await ms[0]!.send({
    type: "genesis-create",
    members: ms.map((m) => m.booted.identity),
    challenges: ms.map((m) => m.booted.challenge),
    guessLimit: 10,
    ...PUBLISHED,
  });
  if (created.type !== "genesis-packages") throw new Error(`create refused: ${JSON.stringify(created)}`);
  const signatures: Uint8Array[] = [];
  for (const [i, m] of ms.entries()) {
    const s = await m.send({
      type: "genesis-join",
      package: created.packages[i]!,
      statement: created.statement,
    });
    if (s.type !== "genesis-signature") throw new Error(`join refused: ${JSON.stringify(s)}`);
    signatures.push(s.signature);
  }
  return { created, signatures };
}

async function finish(m: Member, signatures: Uint8Array[]): Promise<void> {
  const p = await m.send({ type: "genesis-finish", signatures });
  if (p.type !== "persist") throw new Error(`finish refused: ${JSON.stringify(p)}`);
  m.stored.push(...p.entries);
  const b = await m.send({ type: "persisted", id: p.id });
  expect(b).toMatchObject({ type: "booted" });
}

function refused(f: HsmToHost, code: string): void {
  expect(f.type).toBe("failed");
  expect(f.type === "failed" && f.code).toBe(code);
}

describe("software platform: one genesis per HSM", () => {
  it("NVRAM and storage wiped: a new identity, the saved package is refused, old storage is refused", async () => {
    const ms = await members(3);
    const { created, signatures } = await createAndJoin(ms);
    for (const m of ms) await finish(m, signatures);
    const m2 = ms[1]!;
    const oldIdentity = m2.booted.identity;
    const oldStorage = m2.stored.slice();
    // The operator wipes node 2's NVRAM file and its host storage, and restarts it.
    rmSync(join(m2.dir, "nvram.bin"));
    m2.stored = [];
    expect((await m2.start()).type).toBe("booted");
    expect(m2.booted.node).toBe(0);
    expect(m2.booted.identity).not.toEqual(oldIdentity);
    const replay = await m2.send({
      type: "genesis-join",
      package: created.packages[1]!,
      statement: created.statement,
    });
    refused(replay, ErrorCode.GenesisChallenge);
    expect(m2.frames.some((f) => f.type === "genesis-signature" || f.type === "persist")).toBe(false);
    expect(m2.nvram()).toBeNull();
    // An old copy of its storage does not bring the old member back either.
    rmSync(join(m2.dir, "nvram.bin"));
    m2.stored = oldStorage;
    refused(await m2.start(), ErrorCode.Corrupt);
    expect(m2.nvram()).toBeNull();
  });

  it("a member restarted between join and finish is spent: no finish, no rejoin with the old package", async () => {
    const ms = await members(3);
    const { created, signatures } = await createAndJoin(ms);
    const m3 = ms[2]!;
    const nvram = m3.nvram();
    expect(nvram).not.toBeNull();
    refused(await m3.start(), ErrorCode.GenesisSpent);
    expect((await m3.send({ type: "genesis-finish", signatures })).type).toBe("failed");
    const rejoin = await m3.send({
      type: "genesis-join",
      package: created.packages[2]!,
      statement: created.statement,
    });
    expect(rejoin.type).toBe("failed");
    expect(m3.frames.some((f) => f.type === "persist" || f.type === "genesis-signature")).toBe(false);
    expect(m3.nvram()).toEqual(nvram);
  });

  it("the creator and a joiner of one fleet refuse to create or sign a second one", async () => {
    const ms = await members(3);
    await createAndJoin(ms);
    const others = await members(2);
    const second = [others[0]!, ms[0]!, ms[1]!];
    const b = await others[0]!.send({
      type: "genesis-create",
      members: second.map((m) => m.booted.identity),
      challenges: second.map((m) => m.booted.challenge),
      guessLimit: 10,
      ...PUBLISHED,
    });
    if (b.type !== "genesis-packages") throw new Error("the second fleet was not drafted");
    refused(
      await ms[0]!.send({ type: "genesis-join", package: b.packages[1]!, statement: b.statement }),
      ErrorCode.GenesisSpent,
    );
    refused(
      await ms[1]!.send({ type: "genesis-join", package: b.packages[2]!, statement: b.statement }),
      ErrorCode.GenesisSpent,
    );
    const again = [ms[2]!, others[1]!, others[0]!];
    // ms[2] joined the first fleet: asked to create another, it refuses too.
    refused(
      await ms[2]!.send({
        type: "genesis-create",
        members: again.map((m) => m.booted.identity),
        challenges: again.map((m) => m.booted.challenge),
        guessLimit: 10,
        ...PUBLISHED,
      }),
      ErrorCode.GenesisSpent,
    );
  });
});

describe("software platform: one HSM, one writer of its NVRAM", () => {
  it("a second process on the same folder (its lock deleted) signs no second genesis: it stops at its first NVRAM write", async () => {
    const ms = await members(3);
    // The operator deletes hsm.lock (a file of the folder, not NVRAM or keys) and starts a twin
    // process on node 1's folder: same keys, NVRAM read while still empty.
    rmSync(join(ms[0]!.dir, "hsm.lock"), { force: true });
    const twin = new Member(ms[0]!.dir);
    expect((await twin.start()).type).toBe("booted");
    expect(twin.booted.identity).toEqual(ms[0]!.booted.identity);
    // Node 1's first process takes part in fleet 1 (it records the ceremony in NVRAM first).
    const { signatures } = await createAndJoin(ms);
    const fleet1 = ms[0]!.nvram();
    // The twin is asked to join fleet 2: its NVRAM write finds NVRAM changed under it, and it stops.
    const others = await members(2);
    const second = [others[0]!, twin, others[1]!];
    const created = await others[0]!.send({
      type: "genesis-create",
      members: second.map((m) => m.booted.identity),
      challenges: second.map((m) => m.booted.challenge),
      guessLimit: 10,
      ...PUBLISHED,
    });
    expect(created.type).toBe("genesis-packages");
    if (created.type !== "genesis-packages") return;
    const joined = await twin.send({
      type: "genesis-join",
      package: created.packages[1]!,
      statement: created.statement,
    });
    expect(joined.type).not.toBe("genesis-signature");
    expect(twin.frames.some((f) => f.type === "genesis-signature")).toBe(false);
    // NVRAM still names fleet 1 only, and node 1's first process goes on to finish it.
    expect(ms[0]!.nvram()).toEqual(fleet1);
    for (const m of ms) await finish(m, signatures);
  });
});
