/**
 * Load the measured HSM core (build/hsm-core.js): read the file's bytes once, hash them, and
 * import exactly those bytes (from a data: URL, so the file cannot change between hashing and
 * loading). The platform attests the hash as this HSM's measurement.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { HsmCore } from "@bkv/hsm-core";

export interface LoadedCore {
  HsmCore: typeof HsmCore;
  measurement: Uint8Array;
}

/** The measurement of a core file without loading it (for the provisioning tool). */
export function measureCoreFile(path: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(readFileSync(path)).digest());
}

export async function loadCore(path: string): Promise<LoadedCore> {
  const code = readFileSync(path);
  const measurement = new Uint8Array(createHash("sha256").update(code).digest());
  const mod = (await import(`data:text/javascript;base64,${code.toString("base64")}`)) as {
    HsmCore?: typeof HsmCore;
  };
  if (typeof mod.HsmCore?.create !== "function")
    throw new Error(`${path} is not a measured HSM core (it exports no HsmCore)`);
  return { HsmCore: mod.HsmCore, measurement };
}
