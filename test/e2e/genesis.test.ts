/**
 * Genesis, evidence and audit through the tools a person would use: `bkv measure` is reproducible
 * across folders; `bkv fleet create` runs the ceremony on real HSM processes; `bkv fleet evidence`
 * exports it and `bkv audit` passes it, and fails, naming the check, for the wrong code or the wrong
 * fleet. HSM processes running other code are refused at genesis and cannot take over a fleet.
 */
import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createFleet, HostStorage, HsmProcess } from "@bkv/host";
import { ed25519PublicKeyOf } from "@bkv/hsm-software";
import { generateSignerKey, parseVerifierKey, SIG_COSIGNATURE_V1 } from "@bkv/tlog";
import { decodeAttestation, decodeEvidence, decodeStatement, isBkvError, toHex } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bkv } from "./cli.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const CORE = join(ROOT, "build", "hsm-core.js");
/** The transparency log these fleets are frozen to at genesis (its verifier key, name+hash+base64). */
const LOG_VKEY = generateSignerKey("localhost/bkv-e2e/log").vkey;
/** The release key (raw Ed25519, hex) the e2e fleets freeze, and one they did not. */
const RELEASE_HEX = toHex(ed25519PublicKeyOf(new Uint8Array(32).fill(0x52)));
const OTHER_RELEASE_HEX = toHex(ed25519PublicKeyOf(new Uint8Array(32).fill(0x53)));
/** The witness (cosignature/v1 verifier key) the e2e fleets freeze, threshold 1. */
const WITNESS_VKEY = generateSignerKey("localhost/bkv-e2e/witness", SIG_COSIGNATURE_V1).vkey;
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "bkv-genesis-"));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A copy of the source the core is built from, in its own folder (dependencies linked). */
function copySource(to: string): void {
  for (const pkg of ["hsm-core", "wire"]) {
    mkdirSync(join(to, "packages", pkg), { recursive: true });
    cpSync(join(ROOT, "packages", pkg, "src"), join(to, "packages", pkg, "src"), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(to, "node_modules"));
}

/** Provision node's HSM for this core (the provisioning tool, with dir's vendor root). */
function provision(dir: string, node: number, core = CORE): void {
  execFileSync(
    process.execPath,
    [
      join(ROOT, "packages", "hsm-software", "dist", "provision.js"),
      "--dir",
      join(dir, `node-${node}`, "hsm"),
      "--vendor-key",
      join(dir, "vendor-root.key"),
      "--core",
      core,
    ],
    { env: {} },
  );
}

/** The argv of node's HSM process for this core; provisioned for it first unless told not to. */
function hsmCommand(dir: string, node: number, core = CORE, provisioned = false): string[] {
  if (!provisioned) provision(dir, node, core);
  return [
    process.execPath,
    join(ROOT, "packages", "hsm-software", "dist", "main.js"),
    "--dir",
    join(dir, `node-${node}`, "hsm"),
    "--core",
    core,
  ];
}

describe("code measurement", () => {
  it("two builds in different folders give the same bytes, and the measurement of the built core", async () => {
    const a = join(work, "src-a");
    const b = join(work, "elsewhere", "src-b");
    copySource(a);
    copySource(b);
    const ra = await bkv(["measure", "--source", a, "--out", join(work, "a.js")]);
    const rb = await bkv(["measure", "--source", b, "--out", join(work, "b.js")]);
    expect(ra.code).toBe(0);
    expect(rb.code).toBe(0);
    expect(readFileSync(join(work, "a.js")).equals(readFileSync(join(work, "b.js")))).toBe(true);
    expect(ra.stdout).toBe(rb.stdout);
    expect(ra.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    // The checkout's own build (what the HSM processes load) measures the same.
    const own = await bkv(["measure"]);
    expect(own.stdout).toBe(ra.stdout);
    // Any change to the code changes the measurement.
    appendFileSync(join(b, "packages", "hsm-core", "src", "policy.ts"), "\nexport const CHANGED = 1;\n");
    const rc = await bkv(["measure", "--source", b]);
    expect(rc.stdout).not.toBe(ra.stdout);
  });
});

describe("fleet create, evidence, audit", () => {
  it("creates a fleet through the ceremony; its evidence audits clean; the wrong code or fleet fails by name", async () => {
    const dir = join(work, "fleet");
    // A successor limit above the fleet's own guess limit is refused before any HSM is touched.
    const tooHigh = await bkv([
      "fleet",
      "create",
      "--dir",
      join(work, "fleet-too-high"),
      "--nodes",
      "1",
      "--log-key",
      LOG_VKEY,
      "--release-key",
      RELEASE_HEX,
      "--witness-key",
      WITNESS_VKEY,
      "--witness-threshold",
      "1",
      "--guess-limit",
      "5",
      "--max-successor-guess-limit",
      "6",
    ]);
    expect(tooHigh.code).not.toBe(0);
    expect(tooHigh.stderr).toContain("--max-successor-guess-limit must be a whole number from 1 to 5");
    // So is a fleet with no witness policy, or one naming the log itself as its witness.
    const base = [
      "fleet",
      "create",
      "--dir",
      join(work, "fleet-no-witness"),
      "--nodes",
      "1",
      "--log-key",
      LOG_VKEY,
    ];
    const noWitness = await bkv([...base, "--release-key", RELEASE_HEX]);
    expect(noWitness.code).not.toBe(0);
    expect(noWitness.stderr).toContain("--witness-key is required");
    const noThreshold = await bkv([...base, "--release-key", RELEASE_HEX, "--witness-key", WITNESS_VKEY]);
    expect(noThreshold.code).not.toBe(0);
    expect(noThreshold.stderr).toContain("--witness-threshold is required");
    const created = await bkv([
      "fleet",
      "create",
      "--dir",
      dir,
      "--nodes",
      "3",
      "--log-key",
      LOG_VKEY,
      "--release-key",
      RELEASE_HEX,
      "--witness-key",
      WITNESS_VKEY,
      "--witness-threshold",
      "1",
      "--max-successor-guess-limit",
      "7",
    ]);
    expect(created.code).toBe(0);
    const info = JSON.parse(created.stdout) as { fleetId: string; measurement: string; vendorRoot: string };
    const ev = join(work, "evidence.bin");
    expect((await bkv(["fleet", "evidence", "--dev", dir, "--out", ev])).code).toBe(0);

    const ok = await bkv([
      "audit",
      "--evidence",
      ev,
      "--vendor-root",
      info.vendorRoot,
      "--allow-test-roots",
      "--fleet",
      info.fleetId,
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("AUDIT PASSED");
    expect(ok.stdout).toContain("PASS  attestation.3");

    // bkv fleet create's vendor root is a test root: without --allow-test-roots no attestation counts.
    const strict = await bkv(["audit", "--evidence", ev, "--vendor-root", info.vendorRoot]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toContain("FAIL  attestation.1");
    const json = await bkv([
      "audit",
      "--evidence",
      ev,
      "--vendor-root",
      info.vendorRoot,
      "--allow-test-roots",
      "--json",
    ]);
    const report = JSON.parse(json.stdout) as { ok: boolean; fleet: { measurement: string; n: number } };
    expect(report.ok).toBe(true);
    expect(report.fleet).toMatchObject({
      measurement: info.measurement,
      n: 3,
      releaseKey: RELEASE_HEX,
      maxSuccessorGuessLimit: 7,
      witnesses: [
        { name: "localhost/bkv-e2e/witness", key: toHex(parseVerifierKey(WITNESS_VKEY).publicKey) },
      ],
      witnessThreshold: 1,
    });

    // The auditor's release key: the frozen one passes, another fails by name.
    const audit = (key: string) =>
      bkv([
        "audit",
        "--evidence",
        ev,
        "--vendor-root",
        info.vendorRoot,
        "--allow-test-roots",
        "--release-key",
        key,
      ]);
    const sameRelease = await audit(RELEASE_HEX);
    expect(sameRelease.code).toBe(0);
    expect(sameRelease.stdout).toContain("PASS  statement.release-key");
    const otherRelease = await audit(OTHER_RELEASE_HEX);
    expect(otherRelease.code).toBe(1);
    expect(otherRelease.stdout).toContain("FAIL  statement.release-key");
    expect(otherRelease.stdout).toContain("AUDIT FAILED: 1 of");

    const wrongCode = await bkv([
      "audit",
      "--evidence",
      ev,
      "--vendor-root",
      info.vendorRoot,
      "--allow-test-roots",
      "--measurement",
      "ab".repeat(32),
    ]);
    expect(wrongCode.code).toBe(1);
    expect(wrongCode.stdout).toContain("FAIL  measurement.source");
    expect(wrongCode.stdout).toContain("AUDIT FAILED: 1 of");

    const other = await bkv([
      "fleet",
      "create",
      "--dir",
      join(work, "fleet-2"),
      "--nodes",
      "1",
      "--log-key",
      LOG_VKEY,
      "--release-key",
      RELEASE_HEX,
      "--witness-key",
      WITNESS_VKEY,
      "--witness-threshold",
      "1",
    ]);
    const otherId = (JSON.parse(other.stdout) as { fleetId: string }).fleetId;
    const wrongFleet = await bkv([
      "audit",
      "--evidence",
      ev,
      "--vendor-root",
      info.vendorRoot,
      "--allow-test-roots",
      "--fleet",
      otherId,
    ]);
    expect(wrongFleet.code).toBe(1);
    expect(wrongFleet.stdout).toContain("FAIL  fleet.id");

    // Another folder's vendor root did not attest these HSMs.
    const rogueRoot = join(work, "fleet-2", "vendor-root.pub");
    const wrongRoot = await bkv([
      "audit",
      "--evidence",
      ev,
      "--vendor-root",
      rogueRoot,
      "--allow-test-roots",
    ]);
    expect(wrongRoot.code).toBe(1);
    expect(wrongRoot.stdout).toContain("FAIL  attestation.1");
  });

  it("an HSM process running other code is refused at genesis, and nothing is stored", async () => {
    const dir = join(work, "other-code");
    const init = await bkv([
      "fleet",
      "create",
      "--dir",
      join(work, "vendor-only"),
      "--nodes",
      "1",
      "--log-key",
      LOG_VKEY,
      "--release-key",
      RELEASE_HEX,
      "--witness-key",
      WITNESS_VKEY,
      "--witness-threshold",
      "1",
    ]);
    expect(init.code).toBe(0);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(work, "vendor-only", "vendor-root.key"), join(dir, "vendor-root.key"));
    const altered = join(work, "altered-core.js");
    copyFileSync(CORE, altered);
    appendFileSync(altered, "\n// a patched build\n");
    const members = [1, 2, 3].map((node) => {
      mkdirSync(join(dir, `node-${node}`, "host"), { recursive: true });
      return {
        node,
        hsmCommand: hsmCommand(dir, node, node === 2 ? altered : CORE),
        storagePath: join(dir, `node-${node}`, "host", "vault.sqlite"),
      };
    });
    const err = await createFleet(members, {
      guessLimit: 10,
      namespace: "bkv-e2e",
      epoch: 1,
      logKey: parseVerifierKey(LOG_VKEY).publicKey,
      releaseKey: ed25519PublicKeyOf(new Uint8Array(32).fill(0x52)),
      witnessPolicy: {
        witnesses: [{ name: "localhost/bkv-e2e/witness", key: parseVerifierKey(WITNESS_VKEY).publicKey }],
        threshold: 1,
      },
    }).catch((e: unknown) => e);
    expect(isBkvError(err, "MEASUREMENT")).toBe(true);
    for (const m of members) {
      const s = new HostStorage(m.storagePath);
      const stored = s.load();
      s.close();
      expect(stored.entries).toHaveLength(0);
    }
  });

  it("a member restarted with other code after genesis cannot open its storage (seal keys are per measurement)", async () => {
    const dir = join(work, "fleet");
    const altered = join(work, "altered-core-2.js");
    copyFileSync(CORE, altered);
    appendFileSync(altered, "\n// an update nobody attested\n");
    const storage = new HostStorage(join(dir, "node-1", "host", "vault.sqlite"));
    const stored = storage.load();
    storage.close();
    // Not provisioned for that code: the HSM process refuses to start (its attestation names the
    // real core's measurement).
    const unattested = new HsmProcess(hsmCommand(dir, 1, altered, true));
    try {
      await expect(unattested.next("booted")).rejects.toThrow(/exited \(75\)/);
    } finally {
      await unattested.stop();
    }
    // The operator, who holds the development vendor root, attests the altered core too: the
    // platform derives another seal key for it, so the entries the real core sealed do not open.
    const h = new HsmProcess(hsmCommand(dir, 1, altered));
    try {
      h.send({ type: "boot", snapshot: stored.snapshot, entries: stored.entries });
      const err = await h.next("booted").catch((e: unknown) => e);
      expect(isBkvError(err, "CORRUPT")).toBe(true);
      expect((err as Error).message).toMatch(/sealed blob failed authentication/);
    } finally {
      await h.stop();
    }
    // Provisioned back for the real core, the member boots its storage again.
    const back = new HsmProcess(hsmCommand(dir, 1));
    try {
      back.send({ type: "boot", snapshot: stored.snapshot, entries: stored.entries });
      expect((await back.next("booted")).node).toBe(1);
    } finally {
      await back.stop();
    }
  });

  it("a member whose NVRAM is wiped is a new HSM: a new identity and challenge, its old storage refused", async () => {
    const dir = join(work, "fleet");
    const st = decodeStatement(decodeEvidence(readFileSync(join(work, "evidence.bin"))).statement);
    expect(st.challenges).toHaveLength(3);
    rmSync(join(dir, "node-2", "hsm", "nvram.bin"));
    const fresh = new HsmProcess(hsmCommand(dir, 2));
    try {
      fresh.send({ type: "boot", snapshot: null, entries: [] });
      const b = await fresh.next("booted");
      expect(b.node).toBe(0);
      expect(b.challenge).toHaveLength(32);
      expect(st.challenges).not.toContainEqual(b.challenge);
      expect(decodeAttestation(b.identity).signKey).not.toEqual(st.members[1]!.signKey);
    } finally {
      await fresh.stop();
    }
    const storage = new HostStorage(join(dir, "node-2", "host", "vault.sqlite"));
    const stored = storage.load();
    storage.close();
    expect(stored.entries.length).toBeGreaterThan(0);
    const old = new HsmProcess(hsmCommand(dir, 2));
    try {
      old.send({ type: "boot", snapshot: stored.snapshot, entries: stored.entries });
      const err = await old.next("booted").catch((e: unknown) => e);
      expect(isBkvError(err, "CORRUPT")).toBe(true);
    } finally {
      await old.stop();
    }
  });
});
