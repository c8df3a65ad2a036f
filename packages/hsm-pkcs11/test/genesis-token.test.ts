/**
 * One genesis per HSM with a PKCS#11 member (SoftHSM2), through the real core: a fleet of three
 * whose member 2 keeps its keys and NVRAM in a token (members 1 and 3 are in-memory HSMs of the same
 * test vendor and code). The operator destroys member 2's NVRAM object, wipes its storage and
 * replays its saved genesis package; or restarts it between join and finish. Each is refused by
 * name and stores nothing. A process opens one token at a time, so member 2 closes between starts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HsmCore, type HsmPlatform } from "@bkv/hsm-core";
import {
  ed25519PublicKeyOf,
  memoryPlatform,
  newMemoryHsm,
  TEST_MEASUREMENT,
  TEST_VENDOR,
} from "@bkv/hsm-software";
import {
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  type HostToHsm,
  type HsmToHost,
  type SealedEntry,
} from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import { type Pkcs11Platform, pkcs11Platform, provisionPkcs11Hsm, provisionToken } from "../src/index.js";
import { activeToken, find, pkcs11js } from "../src/token.js";

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

const MODULE = "/usr/lib/softhsm/libsofthsm2.so";
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

class Member {
  frames: HsmToHost[] = [];
  core!: HsmCore;
  stored: SealedEntry[] = [];
  platform: HsmPlatform | null = null;
  constructor(readonly open: () => HsmPlatform) {}

  async start(): Promise<HsmToHost> {
    this.stop();
    this.platform = this.open();
    this.frames = [];
    this.core = await HsmCore.create(this.platform, (b) => this.frames.push(decodeHsmToHost(b)));
    return this.send({ type: "boot", snapshot: null, entries: this.stored });
  }

  stop(): void {
    (this.platform as Pkcs11Platform | null)?.close?.();
    this.platform = null;
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
}

function tokenMember(): { member: Member; hsmDir: string } {
  const root = mkdtempSync(join(tmpdir(), "bkv-genesis-token-"));
  dirs.push(root);
  const hsmDir = join(root, "hsm");
  provisionToken(hsmDir, MODULE);
  // Each start is provisioned first (as bkv dev does): a wiped token gets new keys and needs a new
  // attestation, which the provisioning tool, not the HSM, makes.
  const member = new Member(() => {
    provisionPkcs11Hsm({ hsmDir, vendor: TEST_VENDOR, measurement: TEST_MEASUREMENT, module: MODULE });
    return pkcs11Platform({ hsmDir, measurement: TEST_MEASUREMENT, module: MODULE });
  });
  return { member, hsmDir };
}

function memoryMember(): Member {
  const hsm = newMemoryHsm();
  return new Member(() => memoryPlatform(hsm));
}

async function fleet() {
  const { member, hsmDir } = tokenMember();
  const ms = [memoryMember(), member, memoryMember()];
  for (const m of ms) expect((await m.start()).type).toBe("booted");
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
  return { ms, token: member, hsmDir, created, signatures };
}

function refused(f: HsmToHost, code: string): void {
  expect(f.type).toBe("failed");
  expect(f.type === "failed" && f.code).toBe(code);
}

/** The kinds (magic) of the NVRAM objects in the open token: "BKVL" core data, "BKVK" a life record. */
function nvramObjects(): string[] {
  const t = activeToken()!;
  return find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }]).map((h) =>
    t.p11
      .C_GetAttributeValue(t.session, h, [{ type: pkcs11js.CKA_VALUE }])[0]!
      .value.subarray(0, 4)
      .toString(),
  );
}

describe("PKCS#11 member: one genesis per HSM", () => {
  it("NVRAM object destroyed and storage wiped: new identity, the saved package is refused", async () => {
    const { token, created, signatures } = await fleet();
    try {
      const p = await token.send({ type: "genesis-finish", signatures });
      if (p.type !== "persist") throw new Error("finish refused");
      token.stored.push(...p.entries);
      expect(await token.send({ type: "persisted", id: p.id })).toMatchObject({ type: "booted", node: 2 });
      const oldIdentity = token.booted.identity;
      const oldStorage = token.stored.slice();
      // The operator destroys the NVRAM object (with the token's user PIN) and wipes storage.
      const t = activeToken()!;
      for (const h of find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }]))
        t.p11.C_DestroyObject(t.session, h);
      token.stored = [];
      expect((await token.start()).type).toBe("booted");
      expect(token.booted.node).toBe(0);
      expect(token.booted.identity).not.toEqual(oldIdentity);
      const replay = await token.send({
        type: "genesis-join",
        package: created.packages[1]!,
        statement: created.statement,
      });
      refused(replay, ErrorCode.GenesisChallenge);
      expect(token.frames.some((f) => f.type === "genesis-signature" || f.type === "persist")).toBe(false);
      expect(nvramObjects()).toEqual(["BKVK"]); // only the new life's record: the core wrote nothing
      // Its old storage was sealed under the destroyed seal key: refused as well.
      token.stored = oldStorage;
      refused(await token.start(), ErrorCode.Corrupt);
      expect(nvramObjects()).toEqual(["BKVK"]);
    } finally {
      token.stop();
    }
  });

  it("restarted between join and finish: spent, it neither finishes nor rejoins", async () => {
    const { token, created, signatures } = await fleet();
    try {
      expect(nvramObjects()).toEqual(["BKVL"]); // the ceremony record replaced the life record
      const identity = token.booted.identity;
      refused(await token.start(), ErrorCode.GenesisSpent);
      expect(await token.platform!.identity()).toEqual(identity); // the same HSM: its NVRAM names the fleet
      expect((await token.send({ type: "genesis-finish", signatures })).type).toBe("failed");
      const rejoin = await token.send({
        type: "genesis-join",
        package: created.packages[1]!,
        statement: created.statement,
      });
      expect(rejoin.type).toBe("failed");
      expect(token.frames.some((f) => f.type === "genesis-signature" || f.type === "persist")).toBe(false);
    } finally {
      token.stop();
    }
  });
});
