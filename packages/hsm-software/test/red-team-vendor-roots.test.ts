/**
 * Red team (operator): the vendor roots an HSM trusts in other members' attestations are read at
 * every start from HSM_DIR/vendor-roots.pub, a file on the operator's disk that nothing seals,
 * measures or attests ("fixed at provisioning" only as long as nobody edits it). The operator
 * appends a root of its own, attests a key pair of its own under it (the real measurement), and the
 * real, measured core, as creator, seals the whole genesis entry (fleet signing seed, HPKE private
 * key, OPAQUE server setup) to that "member": the operator opens it. A fleet member that is the
 * operator also receives every log entry over the peer channel (OPAQUE records, wrapped keys).
 *
 * What catches it: clients and `bkv audit` check attestations against their own pinned roots, so
 * the fleet's evidence fails there (second test). The HSM itself does not notice; nor would the
 * in-HSM check of a successor fleet (DESIGN §8) that relies on "its frozen vendor roots".
 */
import { createECDH, createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditEvidence } from "@bkv/client";
import {
  decodePackage,
  decodeRaftEntry,
  HsmCore,
  type HsmPlatform,
  packageAad,
  packageKey,
} from "@bkv/hsm-core";
import {
  decodeAttestation,
  decodeHsmToHost,
  decodeStatement,
  encodeEvidence,
  encodeHostToHsm,
  GENESIS_CHALLENGE_LENGTH,
  type HostToHsm,
  type HsmToHost,
  toHex,
} from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attest,
  ed25519PublicKeyOf,
  ed25519SignWith,
  newVendorRoot,
  nodeHsmCrypto,
  provisionSoftwareHsm,
  softwarePlatform,
  VENDOR_ROOTS_FILE,
} from "../src/index.js";

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
const vendor = newVendorRoot(); // the genuine vendor root: what clients pin
const operatorRoot = newVendorRoot(); // the operator's own root
const measurement = new Uint8Array(createHash("sha256").update("bkv red team core").digest());
const root = mkdtempSync(join(tmpdir(), "bkv-red-roots-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class Member {
  frames: HsmToHost[] = [];
  core!: HsmCore;
  constructor(readonly dir: string) {}
  async start(): Promise<HsmToHost> {
    provisionSoftwareHsm({ dir: this.dir, vendor, measurement });
    // The operator edits the provisioned file: the genuine root, and its own.
    writeFileSync(
      join(this.dir, VENDOR_ROOTS_FILE),
      `${toHex(vendor.publicKey)}\n${toHex(operatorRoot.publicKey)}\n`,
    );
    const platform: HsmPlatform = softwarePlatform({ dir: this.dir, measurement });
    this.core = await HsmCore.create(platform, (b) => this.frames.push(decodeHsmToHost(b)));
    return this.send({ type: "boot", snapshot: null, entries: [] });
  }
  async send(m: HostToHsm): Promise<HsmToHost> {
    const before = this.frames.length;
    await this.core.receive(encodeHostToHsm(m));
    const last = this.frames.slice(before).at(-1);
    if (last === undefined) throw new Error(`no answer to ${m.type}`);
    return last;
  }
}

/** The operator's "member": its own keys, attested under its own root with the real measurement. */
const fakeSignSeed = new Uint8Array(randomBytes(32));
const fakeAgree = createECDH("prime256v1");
fakeAgree.generateKeys();
const fakeAttestation = attest(operatorRoot, {
  platform: "software",
  vendor: "bkv test vendor root: software platform (looks the part)",
  signKey: ed25519PublicKeyOf(fakeSignSeed),
  agreeKey: new Uint8Array(fakeAgree.getPublicKey(null, "uncompressed")),
  measurement,
  properties: [],
});

let outcome: {
  refused: boolean;
  leakedSeedMatches: boolean;
  evidence: Uint8Array | null;
} = { refused: true, leakedSeedMatches: false, evidence: null };

beforeAll(async () => {
  const a = new Member(join(root, "a"));
  const b = new Member(join(root, "b"));
  const booted: (HsmToHost & { type: "booted" })[] = [];
  for (const m of [a, b]) {
    let f: HsmToHost;
    try {
      f = await m.start();
    } catch {
      return; // the platform refused to start with the edited roots file: the attack fails
    }
    if (f.type !== "booted") return;
    booted.push(f);
  }
  const created = await a.send({
    type: "genesis-create",
    members: [booted[0]!.identity, booted[1]!.identity, fakeAttestation],
    challenges: [
      booted[0]!.challenge,
      booted[1]!.challenge,
      new Uint8Array(randomBytes(GENESIS_CHALLENGE_LENGTH)),
    ],
    guessLimit: 10,
    ...PUBLISHED,
  });
  if (created.type !== "genesis-packages") return;
  outcome.refused = false;
  // The operator opens the package the real creator sealed to its member 3.
  const p = decodePackage(created.packages[2]!);
  const creatorAgree = decodeAttestation(booted[0]!.identity).agreeKey;
  const shared = new Uint8Array(fakeAgree.computeSecret(creatorAgree));
  const crypto = nodeHsmCrypto();
  const key = packageKey(crypto, shared, p.fleetId, p.creator, p.member);
  const entry = decodeRaftEntry(await crypto.aeadOpen(key, p.nonce, p.ciphertext, packageAad(p)));
  const op = entry.ops[0];
  if (op?.op === "genesis") {
    const st = decodeStatement(created.statement);
    outcome.leakedSeedMatches =
      toHex(ed25519PublicKeyOf(op.genesis.fleetSigningSeed)) === toHex(st.fleetSigningKey) &&
      op.genesis.hpkePrivateKey.length > 0;
  }
  // The fleet completes: both real HSMs sign; the operator signs for its member.
  const sigs: Uint8Array[] = [];
  for (const [i, m] of [a, b].entries()) {
    const s = await m.send({
      type: "genesis-join",
      package: created.packages[i]!,
      statement: created.statement,
    });
    if (s.type !== "genesis-signature") return;
    sigs.push(s.signature);
  }
  sigs.push(ed25519SignWith(fakeSignSeed, created.statement));
  outcome = { ...outcome, evidence: encodeEvidence({ statement: created.statement, signatures: sigs }) };
});

describe("red team: vendor-roots.pub on the operator's disk", () => {
  it("the HSM does not seal the fleet's secrets to a member attested by a root the operator added", () => {
    // Before the fix: the creator accepted the operator's member and the operator recovers the fleet signing seed.
    expect({ refused: outcome.refused, leaked: outcome.leakedSeedMatches }).toEqual({
      refused: true,
      leaked: false,
    });
  });

  it("holds at the client: the evidence fails `bkv audit` under the genuine pinned root", () => {
    if (outcome.evidence === null) return; // the HSMs refused: nothing to audit
    const base = { expectedMeasurement: measurement, maxGuessLimit: 10 };
    const pinned = auditEvidence(outcome.evidence, { ...base, vendorRoots: [vendor.publicKey] });
    expect(pinned.ok).toBe(false);
    expect(pinned.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["attestation.3"]);
    // Only a client that pinned the operator's root too would accept it.
    const both = auditEvidence(outcome.evidence, {
      ...base,
      vendorRoots: [vendor.publicKey, operatorRoot.publicKey],
    });
    expect(both.ok).toBe(true);
  });
});
