/**
 * An HSM platform whose seal key and NVRAM live in a plain object instead of files, for tests and
 * the simulator. Keep the MemoryHsm and build a new platform from it to "restart" the same HSM.
 *
 * Identity keys, seal key and NVRAM live and die together: a platform built on a MemoryHsm whose
 * NVRAM is empty replaces its identity and seal keys with new ones first (an HSM with no NVRAM has
 * no past), so nothing sealed or signed under its old identity opens or counts again.
 */
import { createHash, randomBytes } from "node:crypto";
import type { HsmPlatform } from "@bkv/hsm-core";
import { utf8 } from "@bkv/wire";
import { nodeHsmCrypto } from "./node-crypto.js";
import { identityPublicKeys, newIdentityKey, softIdentity, softSeal } from "./soft-identity.js";
import { attest, newVendorRoot, type VendorRoot } from "./vendor-root.js";

export interface MemoryHsm {
  /** The master seal secret (seal keys are derived from it per measurement). */
  sealKey: Uint8Array;
  identityKey: Uint8Array;
  nvram: Uint8Array | null;
}

export function newMemoryHsm(): MemoryHsm {
  return {
    sealKey: new Uint8Array(randomBytes(32)),
    identityKey: newIdentityKey(),
    nvram: null,
  };
}

/** An HSM with empty NVRAM starts a new life: new identity and seal keys (the old ones are gone). */
function renewIfNoNvram(hsm: MemoryHsm): void {
  if (hsm.nvram !== null) return;
  hsm.sealKey = new Uint8Array(randomBytes(32));
  hsm.identityKey = newIdentityKey();
}

/** The vendor root and measurement memory HSMs use unless told otherwise (one per process). */
export const TEST_VENDOR: VendorRoot = newVendorRoot();
export const TEST_MEASUREMENT: Uint8Array = new Uint8Array(
  createHash("sha256").update(utf8("bkv in-memory HSM core")).digest(),
);

export interface MemoryPlatformOptions {
  now?: () => number;
  /** Deterministic randomness for the simulator (default: crypto.randomBytes). */
  random?: (n: number) => Uint8Array;
  /** Attests this HSM (default TEST_VENDOR). */
  vendor?: VendorRoot;
  /** Vendor roots accepted from other members (default: [TEST_VENDOR.publicKey]). */
  vendorRoots?: Uint8Array[];
  /** The measurement this HSM reports (default TEST_MEASUREMENT). */
  measurement?: Uint8Array;
}

export function memoryPlatform(
  hsm: MemoryHsm,
  opts: MemoryPlatformOptions | (() => number) = {},
): HsmPlatform {
  const o = typeof opts === "function" ? { now: opts } : opts;
  renewIfNoNvram(hsm);
  const measurement = o.measurement ?? TEST_MEASUREMENT;
  const vendor = o.vendor ?? TEST_VENDOR;
  // In-process test platform: the test vendor root attests here (no HSM process, no provisioning).
  const attestation = attest(vendor, {
    platform: "memory",
    vendor: "bkv test vendor root: in-memory HSM for tests",
    ...identityPublicKeys(hsm.identityKey),
    measurement,
    properties: [],
  });
  const identity = softIdentity({
    identityKey: hsm.identityKey,
    attestation,
    vendorRoots: o.vendorRoots ?? [TEST_VENDOR.publicKey],
    measurement,
  });
  return {
    now: o.now ?? (() => Date.now()),
    randomBytes: o.random ?? ((n) => new Uint8Array(randomBytes(n))),
    ...identity,
    crypto: nodeHsmCrypto(),
    ...softSeal(hsm.sealKey, measurement),
    async nvramRead() {
      return hsm.nvram === null ? null : hsm.nvram.slice();
    },
    async nvramWrite(data) {
      hsm.nvram = data.slice();
    },
  };
}
