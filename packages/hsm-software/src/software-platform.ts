/**
 * The software HSM platform: the HSM's secrets live in its own folder (DIR/node-<i>/hsm/), apart
 * from the host's storage. seal.key (the master seal secret) and identity.key never leave this
 * process; nvram.bin stands for the HSM's NVRAM (a double-buffered file, nvram-file.ts). What
 * provisioning wrote (attestation.bin, vendor-roots.pub: provisioned.ts) is only read. For
 * development and tests, not production (docs/platforms.md).
 *
 * Keys and NVRAM live and die together: keys are made when the folder has no NVRAM and no unused
 * keys (identity.unused: keys made but never handed to a core, so provisioning can attest them
 * before the HSM first runs). A platform built for a core deletes identity.unused first; from then
 * on, losing NVRAM means new keys, which need a new attestation.
 */
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { HsmPlatform } from "@bkv/hsm-core";
import type { AttestationBody } from "@bkv/wire";
import { nodeHsmCrypto } from "./node-crypto.js";
import { NvramFile } from "./nvram-file.js";
import { readOwnAttestation, readTrustedRoots, writeDurably, writeProvisioned } from "./provisioned.js";
import { identityPublicKeys, newIdentityKey, softIdentity, softSeal } from "./soft-identity.js";
import { attest, type VendorRoot } from "./vendor-root.js";

const PLATFORM = "software";

interface SoftKeys {
  sealSecret: Uint8Array;
  identityKey: Uint8Array;
  nvram: NvramFile;
  /** Keys made by this open (the folder had no NVRAM and no unused keys). */
  renewed: boolean;
}

function unusedPath(dir: string): string {
  return join(dir, "identity.unused");
}

/** Open the folder's keys and NVRAM, making new keys if it has neither NVRAM nor unused keys. */
function openSoftKeys(dir: string): SoftKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyPath = join(dir, "seal.key");
  const identityPath = join(dir, "identity.key");
  const nvram = new NvramFile(join(dir, "nvram.bin"));
  // With no NVRAM this HSM has no past: keys that a core may have used are replaced before anything
  // can use them again. Keys still marked unused were never handed to a core and are kept (so the
  // attestation provisioning made for them stays valid). The marker is written last: a crash
  // before it leaves no marker, and the next open makes new keys again.
  let renewed = false;
  if (nvram.read() === null && !existsSync(unusedPath(dir))) {
    writeDurably(keyPath, randomBytes(32));
    writeDurably(identityPath, newIdentityKey());
    writeDurably(unusedPath(dir), "identity keys made, not yet used by a core\n");
    renewed = true;
  }
  const read = (p: string) => (existsSync(p) ? new Uint8Array(readFileSync(p)) : null);
  const sealSecret = read(keyPath);
  if (sealSecret === null || sealSecret.length !== 32) {
    nvram.close();
    throw new Error(`${keyPath} is missing or not a 32-byte key`);
  }
  const identityKey = read(identityPath);
  if (identityKey === null) {
    nvram.close();
    throw new Error(`${identityPath} is missing while NVRAM is not empty`);
  }
  return { sealSecret, identityKey, nvram, renewed };
}

/** The keys are handed to a core: from now on they die with NVRAM. */
function markUsed(dir: string): void {
  if (!existsSync(unusedPath(dir))) return;
  unlinkSync(unusedPath(dir));
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function softwareBody(identityKey: Uint8Array, measurement: Uint8Array): AttestationBody {
  return {
    platform: PLATFORM,
    vendor:
      "bkv test vendor root: software platform, keys in files of the HSM's folder, no hardware protection (development only)",
    ...identityPublicKeys(identityKey),
    measurement,
    properties: ["keys: files in the HSM folder, mode 0600", "nvram: file in the HSM folder"],
  };
}

export interface ProvisionOptions {
  dir: string;
  /** The vendor root that attests this HSM (development: the folder's test vendor root). */
  vendor: VendorRoot;
  /** SHA-256 of the core this HSM is provisioned to run. */
  measurement: Uint8Array;
  /** Vendor roots this HSM trusts in other members' attestations (default: [vendor.publicKey]). */
  trustedRoots?: Uint8Array[];
}

/**
 * Provision a software HSM (run by the provisioning tool, never by the HSM process): make its keys
 * if it has none alive, have the vendor root attest them with the measurement, and write the
 * attestation and trusted roots into its folder. Idempotent. Returns whether new keys were made.
 */
export function provisionSoftwareHsm(o: ProvisionOptions): { renewed: boolean; attestation: Uint8Array } {
  const keys = openSoftKeys(o.dir);
  try {
    const attestation = attest(o.vendor, softwareBody(keys.identityKey, o.measurement));
    writeProvisioned(o.dir, attestation, o.trustedRoots ?? [o.vendor.publicKey]);
    return { renewed: keys.renewed, attestation };
  } finally {
    keys.nvram.close();
  }
}

export interface SoftwarePlatformOptions {
  dir: string;
  /** For tests and the simulator: a clock to use instead of Date.now. */
  now?: () => number;
  /** SHA-256 of the core code this HSM process loaded. */
  measurement: Uint8Array;
}

/**
 * The platform of a provisioned software HSM. Throws BkvError ATTESTATION ("needs an attestation")
 * if its folder holds no attestation of its current keys and this measurement by a trusted root.
 */
export function softwarePlatform(opts: SoftwarePlatformOptions): HsmPlatform {
  const keys = openSoftKeys(opts.dir);
  const { nvram } = keys;
  let attestation: Uint8Array;
  let roots: Uint8Array[];
  try {
    roots = readTrustedRoots(opts.dir);
    attestation = readOwnAttestation(
      opts.dir,
      { platform: PLATFORM, ...identityPublicKeys(keys.identityKey), measurement: opts.measurement },
      roots,
    );
    markUsed(opts.dir);
  } catch (e) {
    nvram.close();
    throw e;
  }
  return {
    now: opts.now ?? (() => Date.now()),
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
    crypto: nodeHsmCrypto(),
    ...softSeal(keys.sealSecret, opts.measurement),
    async nvramRead() {
      return nvram.read();
    },
    async nvramWrite(data) {
      nvram.write(data);
    },
    ...softIdentity({
      identityKey: keys.identityKey,
      attestation,
      vendorRoots: roots,
      measurement: opts.measurement,
    }),
  };
}
