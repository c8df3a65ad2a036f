/**
 * Identity keys, seal key and NVRAM live and die together on the software and in-memory platforms:
 * a platform that finds no NVRAM makes new keys, so a wiped HSM attests a new identity and nothing
 * sealed or signed under its old one opens again. On the software platform, what keeps new keys
 * alive before the core writes NVRAM is the life record inside nvram.bin, not a file beside it.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HsmPlatform } from "@bkv/hsm-core";
import { decodeAttestation } from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import {
  memoryPlatform,
  newMemoryHsm,
  newVendorRoot,
  provisionSoftwareHsm,
  softwarePlatform,
} from "../src/index.js";

const vendor = newVendorRoot();
const measurement = new Uint8Array(createHash("sha256").update("bkv life test core").digest());
const aad = new TextEncoder().encode("entry 1");
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function signKeyOf(p: HsmPlatform): Promise<Uint8Array> {
  return decodeAttestation(await p.identity()).signKey;
}

describe("software platform: keys and NVRAM live and die together", () => {
  it("makes new keys while it has no NVRAM, keeps them once it has, and makes new ones when NVRAM is wiped", async () => {
    const root = mkdtempSync(join(tmpdir(), "bkv-life-"));
    dirs.push(root);
    const dir = join(root, "hsm");
    // Each start provisioned first (bkv dev does): new keys need the provisioning tool's attestation.
    const open = () => {
      provisionSoftwareHsm({ dir, vendor, measurement });
      return softwarePlatform({ dir, measurement });
    };
    // Started, never wrote NVRAM (a crash before genesis): NVRAM holds the keys' life record, so the
    // next start keeps them (the core signed and sealed nothing for a fleet before writing NVRAM).
    const a = await signKeyOf(open());
    expect(await signKeyOf(open())).toEqual(a);
    // The life record is NVRAM: wiped with nvram.bin, the keys go, whatever files lie beside it.
    rmSync(join(dir, "nvram.bin"));
    writeFileSync(join(dir, "identity.unused"), "identity keys made, not yet used by a core\n");
    const b = await signKeyOf(open());
    expect(b).not.toEqual(a);
    const p = open();
    expect(await signKeyOf(p)).toEqual(b);
    expect(await p.nvramRead()).toBeNull(); // the core never sees the life record
    await p.nvramWrite(new Uint8Array([1]));
    const kept = await signKeyOf(p);
    const sealed = await p.seal(new Uint8Array([1, 2, 3]), aad);
    const again = open();
    expect(await signKeyOf(again)).toEqual(kept);
    expect(await again.unseal(sealed, aad)).toEqual(new Uint8Array([1, 2, 3]));
    // The NVRAM file wiped: a new identity, and the old seal key is gone.
    rmSync(join(dir, "nvram.bin"));
    const wiped = open();
    expect(await wiped.nvramRead()).toBeNull();
    expect(await signKeyOf(wiped)).not.toEqual(kept);
    await expect(wiped.unseal(sealed, aad)).rejects.toThrow();
  });
});

describe("memory platform: keys and NVRAM live and die together", () => {
  it("a MemoryHsm without NVRAM gets new keys at every start; with NVRAM the same; wiped, new again", async () => {
    const hsm = newMemoryHsm();
    const a = await signKeyOf(memoryPlatform(hsm));
    const b = await signKeyOf(memoryPlatform(hsm));
    expect(b).not.toEqual(a);
    const p = memoryPlatform(hsm);
    await p.nvramWrite(new Uint8Array([1]));
    const sealed = await p.seal(new Uint8Array([4]), aad);
    const kept = await signKeyOf(p);
    expect(await signKeyOf(memoryPlatform(hsm))).toEqual(kept);
    hsm.nvram = null;
    const wiped = memoryPlatform(hsm);
    expect(await signKeyOf(wiped)).not.toEqual(kept);
    await expect(wiped.unseal(sealed, aad)).rejects.toThrow();
  });
});
