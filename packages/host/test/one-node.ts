/** Test helper: a vault of one node (genesis ceremony, host agent, HSM process), ready to serve. */
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createFleet, type HostConfig, type RunningHost, startHost } from "@bkv/host";
import {
  ed25519PublicKeyOf,
  measureCoreFile,
  newVendorRoot,
  provisionSoftwareHsm,
  readVendorRootKey,
  writeVendorRoot,
} from "@bkv/hsm-software";

/** The log key a one-node test vault is frozen to (its seed is TEST_LOG_SEED, for tests that sign as the log). */
export const TEST_LOG_SEED = new Uint8Array(32).fill(0x42);
/** The release key a one-node test vault freezes for its successors' code (raw Ed25519). */
export const TEST_RELEASE_KEY = ed25519PublicKeyOf(new Uint8Array(32).fill(0x52));
/** The witness policy a one-node test vault freezes: one witness (its seed: 0x57 bytes), threshold 1. */
export const TEST_WITNESS_POLICY = {
  witnesses: [{ name: "bkv-test/witness", key: ed25519PublicKeyOf(new Uint8Array(32).fill(0x57)) }],
  threshold: 1,
};

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));

/**
 * The argv of a software HSM process in dir/hsm, provisioned first: its keys attested by a test
 * vendor root kept in dir (outside the HSM's folder; the HSM process never sees its private key).
 */
export function testHsmCommand(dir: string): string[] {
  const key = join(dir, "vendor-root.key");
  mkdirSync(dir, { recursive: true });
  if (!existsSync(key)) writeVendorRoot(newVendorRoot(), key, join(dir, "vendor-root.pub"));
  provisionSoftwareHsm({
    dir: join(dir, "hsm"),
    vendor: readVendorRootKey(key),
    measurement: measureCoreFile(CORE),
  });
  const main = createRequire(import.meta.url).resolve("@bkv/hsm-software/main");
  return [process.execPath, main, "--dir", join(dir, "hsm"), "--core", CORE];
}

export async function startOneNodeVault(config: HostConfig, guessLimit = 10): Promise<RunningHost> {
  await createFleet([{ node: 1, hsmCommand: config.hsmCommand, storagePath: config.storagePath }], {
    guessLimit,
    namespace: "bkv-test",
    epoch: 1,
    logKey: ed25519PublicKeyOf(TEST_LOG_SEED),
    releaseKey: TEST_RELEASE_KEY,
    witnessPolicy: TEST_WITNESS_POLICY,
  });
  const host = await startHost(config);
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${host.url}/v1/health`)).json()) as { role?: string };
    if (h.role === "leader") return host;
    await new Promise((r) => setTimeout(r, 25));
  }
  await host.close();
  throw new Error("the vault's HSM did not become leader");
}
