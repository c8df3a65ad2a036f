/**
 * Red team (operator): "one genesis per HSM" rests on "keys die with NVRAM", and the exception for
 * keys never handed to a core is a marker file, HSM_DIR/identity.unused, on the operator's disk.
 * After an HSM has joined fleet X, the operator deletes nvram.bin and its host storage and writes
 * the marker back: the platform keeps the old identity keys (its attestation stays valid), the core
 * boots uninitialized with a fresh challenge, and the same HSM joins fleet Y. Both fleets' evidence
 * pass `bkv audit` under the genuine pinned root, with the same member key in both; nothing in the
 * audit, the log's evidence check or the monitor compares members across fleets.
 *
 * Second: two processes on one folder. A process that booted without writing NVRAM keeps its
 * (now "used") keys in memory; provisioning the folder again makes new keys with a genuine
 * attestation, and a second process runs them: one HSM folder, two live identities, two members
 * of one fleet (a majority of three), and the audit passes. (Not tried on PKCS#11: there the second open destroys
 * the first life's key objects in the token, which should stop the first process signing.)
 *
 * (The software platform documents that the operator can read its keys and restore nvram.bin; the
 * marker needs no saved copy at all. On PKCS#11 the same is a `bkv-unused` data object made with
 * the token PIN, which HSM_DIR/token-pin holds.)
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditEvidence } from "@bkv/client";
import { HsmCore, type HsmPlatform } from "@bkv/hsm-core";
import {
  decodeAttestation,
  decodeHsmToHost,
  encodeEvidence,
  encodeHostToHsm,
  type HostToHsm,
  type HsmToHost,
  type SealedEntry,
} from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import { ed25519PublicKeyOf, newVendorRoot, provisionSoftwareHsm, softwarePlatform } from "../src/index.js";

const PUBLISHED = {
  namespace: "bkv-red",
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
const measurement = new Uint8Array(createHash("sha256").update("bkv red team core 2").digest());
const root = mkdtempSync(join(tmpdir(), "bkv-red-one-genesis-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class Member {
  frames: HsmToHost[] = [];
  core!: HsmCore;
  stored: SealedEntry[] = [];
  constructor(readonly dir: string) {}
  async start(): Promise<HsmToHost> {
    provisionSoftwareHsm({ dir: this.dir, vendor, measurement });
    const platform: HsmPlatform = softwarePlatform({ dir: this.dir, measurement });
    this.frames = [];
    this.core = await HsmCore.create(platform, (b) => this.frames.push(decodeHsmToHost(b)));
    return this.send({ type: "boot", snapshot: null, entries: this.stored });
  }
  async send(m: HostToHsm): Promise<HsmToHost> {
    const before = this.frames.length;
    await this.core.receive(encodeHostToHsm(m));
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

let next = 0;
async function fresh(): Promise<Member> {
  const m = new Member(join(root, `node-${++next}`));
  expect((await m.start()).type).toBe("booted");
  return m;
}

/** A whole genesis; returns the evidence, or null if any member refused. */
async function genesis(ms: Member[]): Promise<Uint8Array | null> {
  const created = await ms[0]!.send({
    type: "genesis-create",
    members: ms.map((m) => m.booted.identity),
    challenges: ms.map((m) => m.booted.challenge),
    guessLimit: 10,
    ...PUBLISHED,
  });
  if (created.type !== "genesis-packages") return null;
  const signatures: Uint8Array[] = [];
  for (const [i, m] of ms.entries()) {
    const s = await m.send({
      type: "genesis-join",
      package: created.packages[i]!,
      statement: created.statement,
    });
    if (s.type !== "genesis-signature") return null;
    signatures.push(s.signature);
  }
  for (const m of ms) {
    const p = await m.send({ type: "genesis-finish", signatures });
    if (p.type !== "persist") return null;
    m.stored.push(...p.entries);
    await m.send({ type: "persisted", id: p.id });
  }
  return encodeEvidence({ statement: created.statement, signatures });
}

const audit = (evidence: Uint8Array) =>
  auditEvidence(evidence, {
    vendorRoots: [vendor.publicKey],
    expectedMeasurement: measurement,
    maxGuessLimit: 10,
  });

describe("red team: identity.unused written back after an NVRAM wipe", () => {
  it("an HSM that joined fleet X does not sign the evidence of fleet Y with the same identity", async () => {
    const x = [await fresh(), await fresh(), await fresh()];
    const evidenceX = await genesis(x);
    expect(evidenceX).not.toBeNull();
    expect(audit(evidenceX!).ok).toBe(true);
    const victim = x[1]!;
    const key = decodeAttestation(victim.booted.identity).signKey;

    // The operator: NVRAM and host storage gone, the "unused" marker back, restart.
    rmSync(join(victim.dir, "nvram.bin"));
    writeFileSync(join(victim.dir, "identity.unused"), "identity keys made, not yet used by a core\n");
    victim.stored = [];
    const b = await victim.start();
    const sameIdentity =
      b.type === "booted" &&
      b.node === 0 &&
      decodeAttestation(b.identity).signKey.every((v, i) => v === key[i]);

    let evidenceY: Uint8Array | null = null;
    if (sameIdentity) evidenceY = await genesis([await fresh(), victim, await fresh()]);
    const twoFleets =
      evidenceY !== null &&
      audit(evidenceY).ok &&
      audit(evidenceY).fleet!.members.some((m) => m.signKey === Buffer.from(key).toString("hex"));
    // Before the fix: the same identity came back uninitialized and the second fleet's evidence passes the audit.
    expect({ sameIdentity, twoFleets }).toEqual({ sameIdentity: false, twoFleets: false });
  });

  it("one folder does not give two live identities: a process keeps old keys while a new open makes new ones", async () => {
    // Process 1 starts on a provisioned folder and boots uninitialized (no NVRAM written yet): its
    // keys are "used" and live on in its memory. The operator provisions the folder again (new
    // keys, a genuine attestation from the provisioning tool) and starts process 2 on it.
    const p1 = await fresh();
    const p2 = new Member(p1.dir);
    expect((await p2.start()).type).toBe("booted");
    const k1 = decodeAttestation(p1.booted.identity).signKey;
    const k2 = decodeAttestation(p2.booted.identity).signKey;
    const twoIdentities = Buffer.compare(Buffer.from(k1), Buffer.from(k2)) !== 0;
    // Both join one fleet: one HSM folder is two of its three members, a majority on one machine.
    const evidence = twoIdentities ? await genesis([p1, p2, await fresh()]) : null;
    const accepted = evidence !== null && audit(evidence).ok;
    expect({ twoIdentities, accepted }).toEqual({ twoIdentities: false, accepted: false });
  });
});
