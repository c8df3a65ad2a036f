/**
 * The software HSM holds no vendor root: the provisioning tool attests its keys and the core's
 * measurement and writes the attestation and trusted roots into its folder; the HSM only reads
 * them and refuses to run, by name, on an attestation that is missing, of other keys (its NVRAM was
 * empty, so it made new ones), of another core, or under a root it was not provisioned to trust.
 * Seal keys are derived per measurement: a modified build cannot open what the real core sealed.
 */
import { execFile } from "node:child_process";
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BkvError, decodeAttestation, ErrorCode, toHex } from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import {
  EXIT_NEEDS_ATTESTATION,
  loadCore,
  measureCoreFile,
  memoryPlatform,
  newMemoryHsm,
  newVendorRoot,
  provisionSoftwareHsm,
  softwarePlatform,
  writeVendorRoot,
} from "../src/index.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));
const require = createRequire(import.meta.url);
const MAIN = require.resolve("@bkv/hsm-software/main");
const PROVISION = require.resolve("@bkv/hsm-software/provision");
const dirs: string[] = [];
const aad = new TextEncoder().encode("entry 1");

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "bkv-provision-"));
  dirs.push(d);
  return d;
}

function refusal(f: () => unknown): BkvError {
  try {
    f();
  } catch (e) {
    if (e instanceof BkvError) return e;
    throw e;
  }
  throw new Error("not refused");
}

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, args, { env: {} }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe("provisioning: the HSM only reads its attestation", () => {
  it("the tool attests; the vendor root's private key is in no file of the HSM's folder; the HSM takes no key or roots from its host", async () => {
    const root = tmp();
    const hsmDir = join(root, "hsm");
    const vendor = newVendorRoot();
    writeVendorRoot(vendor, join(root, "vendor-root.key"), join(root, "vendor-root.pub"));
    const out = await run([
      PROVISION,
      "--dir",
      hsmDir,
      "--vendor-key",
      join(root, "vendor-root.key"),
      "--core",
      CORE,
    ]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/provisioned .* \(new identity keys\)/);
    const platform = softwarePlatform({ dir: hsmDir, measurement: measureCoreFile(CORE) });
    const att = decodeAttestation(await platform.identity());
    expect(att.measurement).toEqual(measureCoreFile(CORE));
    expect(platform.vendorRoots()).toEqual([vendor.publicKey]);
    // Nothing of the vendor root's private key in the HSM's folder, raw or hex.
    for (const f of readdirSync(hsmDir)) {
      const bytes = readFileSync(join(hsmDir, f));
      expect(bytes.includes(Buffer.from(vendor.seed))).toBe(false);
      expect(bytes.toString("latin1").includes(toHex(vendor.seed))).toBe(false);
    }
    // The HSM process takes neither a vendor key nor roots from its argv.
    for (const flag of ["--vendor-key", "--vendor-root"]) {
      const r = await run([MAIN, "--dir", hsmDir, "--core", CORE, flag, join(root, "vendor-root.key")]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Unknown option/);
    }
  });

  it("refuses by name: no attestation, another core, an untrusted root, and new keys after NVRAM loss", () => {
    const dir = join(tmp(), "hsm");
    const vendor = newVendorRoot();
    const measurement = measureCoreFile(CORE);
    const open = (m = measurement) => softwarePlatform({ dir, measurement: m });
    const none = refusal(() => open());
    expect(none.code).toBe(ErrorCode.Attestation);
    expect(none.message).toMatch(/needs an attestation: (vendor-roots.pub|attestation.bin) is missing/);
    // Keys made by the refused start are unused: provisioning attests them, twice the same.
    const first = provisionSoftwareHsm({ dir, vendor, measurement });
    const again = provisionSoftwareHsm({ dir, vendor, measurement });
    expect(decodeAttestation(again.attestation).signKey).toEqual(
      decodeAttestation(first.attestation).signKey,
    );
    const other = new Uint8Array(32).fill(7);
    expect(refusal(() => open(other)).message).toMatch(/needs an attestation: it attests another core/);
    // A file naming another root refuses the attestation.
    const roots = readFileSync(join(dir, "vendor-roots.pub"));
    const added = newVendorRoot().publicKey;
    writeFileSync(join(dir, "vendor-roots.pub"), `${toHex(added)}\n`);
    expect(refusal(() => open()).message).toMatch(/not signed by a vendor root listed in vendor-roots.pub/);
    // A root added to the file is listed, not trusted: the HSM trusts only the root that verifies its
    // own attestation.
    writeFileSync(join(dir, "vendor-roots.pub"), `${roots}${toHex(added)}\n`);
    expect(open().vendorRoots()).toEqual([vendor.publicKey]);
    writeFileSync(join(dir, "vendor-roots.pub"), roots);
    // Runs; the core got the keys. NVRAM never written (a crash before genesis): the keys' life
    // record in NVRAM keeps them. NVRAM wiped: the next start makes new keys, and the old
    // attestation does not fit them.
    open();
    open();
    rmSync(join(dir, "nvram.bin"));
    const renewed = refusal(() => open());
    expect(renewed.code).toBe(ErrorCode.Attestation);
    expect(renewed.message).toMatch(/it attests other identity keys/);
    const fresh = provisionSoftwareHsm({ dir, vendor, measurement });
    expect(decodeAttestation(fresh.attestation).signKey).not.toEqual(
      decodeAttestation(first.attestation).signKey,
    );
    open();
  });

  it("the HSM process exits with EXIT_NEEDS_ATTESTATION and says what to do", async () => {
    const r = await run([MAIN, "--dir", join(tmp(), "hsm"), "--core", CORE]);
    expect(r.code).toBe(EXIT_NEEDS_ATTESTATION);
    expect(r.stderr).toMatch(/this HSM needs an attestation: .*Provision it/);
  });
});

describe("seal keys are per measurement", () => {
  it("storage sealed by the real core does not open under a platform loaded with a modified build", async () => {
    const root = tmp();
    const dir = join(root, "hsm");
    const vendor = newVendorRoot();
    const modifiedPath = join(root, "modified-core.js");
    copyFileSync(CORE, modifiedPath);
    appendFileSync(modifiedPath, "\n// a modified build that would copy secrets out\n");
    const real = await loadCore(CORE);
    const modified = await loadCore(modifiedPath);
    expect(modified.measurement).not.toEqual(real.measurement);
    provisionSoftwareHsm({ dir, vendor, measurement: real.measurement });
    const p = softwarePlatform({ dir, measurement: real.measurement });
    await p.nvramWrite(new Uint8Array([1]));
    const sealed = await p.seal(new TextEncoder().encode("a log entry"), aad);
    // The operator provisions the same HSM (same folder, same master seal secret) for the modified build.
    provisionSoftwareHsm({ dir, vendor, measurement: modified.measurement });
    const q = softwarePlatform({ dir, measurement: modified.measurement });
    const err = await q.unseal(sealed, aad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).code).toBe(ErrorCode.Authentication);
    expect((err as BkvError).message).toMatch(/for the loaded core/);
    // Its own seals open under its own measurement only.
    expect(await q.unseal(await q.seal(new Uint8Array([5]), aad), aad)).toEqual(new Uint8Array([5]));
    // The real core, provisioned back, still opens its storage.
    provisionSoftwareHsm({ dir, vendor, measurement: real.measurement });
    const back = softwarePlatform({ dir, measurement: real.measurement });
    expect(await back.unseal(sealed, aad)).toEqual(new TextEncoder().encode("a log entry"));
  });

  it("the memory platform too", async () => {
    const hsm = newMemoryHsm();
    const a = memoryPlatform(hsm, { measurement: new Uint8Array(32).fill(1) });
    await a.nvramWrite(new Uint8Array([1]));
    const sealed = await a.seal(new Uint8Array([9]), aad);
    const b = memoryPlatform(hsm, { measurement: new Uint8Array(32).fill(2) });
    await expect(b.unseal(sealed, aad)).rejects.toMatchObject({ code: ErrorCode.Authentication });
    expect(
      await memoryPlatform(hsm, { measurement: new Uint8Array(32).fill(1) }).unseal(sealed, aad),
    ).toEqual(new Uint8Array([9]));
  });
});
