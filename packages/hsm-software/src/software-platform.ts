/**
 * The software HSM platform: the HSM's secrets live in its own folder (DIR/node-<i>/hsm/), apart
 * from the host's storage. seal.key (the master seal secret) and identity.key never leave this
 * process; nvram.bin stands for the HSM's NVRAM (a double-buffered file, nvram-file.ts). What
 * provisioning wrote (attestation.bin, vendor-roots.pub: provisioned.ts) is only read. For
 * development and tests, not production (docs/platforms.md).
 *
 * Keys and NVRAM live and die together: keys are made when NVRAM is empty, and with them the
 * platform writes a *life record* into NVRAM (nvram-file.ts) that names them, so they survive a
 * restart before the core has written NVRAM (provisioning attests them before the HSM first runs;
 * an HSM restarted before its genesis keeps them). The record is NVRAM, not a file beside it: the
 * core's first write replaces it, and wiping NVRAM wipes it, so keys never outlive their NVRAM.
 * Keys whose core NVRAM is still empty have signed and sealed nothing for a fleet (the core records
 * its ceremony in NVRAM before it does), so keeping them across such a restart gives no second use.
 *
 * One live process per folder (folder-lock.ts): the HSM process and the provisioning tool hold
 * HSM_DIR/hsm.lock, so provisioning cannot make new keys for a folder whose keys a running process
 * holds in memory, and no second HSM process runs on the same folder.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { HsmPlatform } from "@bkv/hsm-core";
import { type AttestationBody, bytesEqual, utf8 } from "@bkv/wire";
import { lockHsmFolder } from "./folder-lock.js";
import { nodeHsmCrypto } from "./node-crypto.js";
import { NvramFile } from "./nvram-file.js";
import { readOwnAttestation, writeDurably, writeProvisioned } from "./provisioned.js";
import { identityPublicKeys, newIdentityKey, softIdentity, softSeal } from "./soft-identity.js";
import { attest, type VendorRoot } from "./vendor-root.js";

const PLATFORM = "software";

interface SoftKeys {
  sealSecret: Uint8Array;
  identityKey: Uint8Array;
  nvram: NvramFile;
  /** Keys made by this open (the folder's NVRAM was empty). */
  renewed: boolean;
}

const LIFE_DOMAIN = utf8("bkv/software-life/v1");

/** What the life record holds: a digest of the keys it keeps alive. */
function lifeOf(sealSecret: Uint8Array, identityKey: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash("sha256").update(LIFE_DOMAIN).update(sealSecret).update(identityKey).digest(),
  );
}

function readKey(path: string): Uint8Array | null {
  return existsSync(path) ? new Uint8Array(readFileSync(path)) : null;
}

/**
 * Open the folder's keys and NVRAM. Keys are kept if NVRAM holds the core's record, or the life
 * record of exactly these keys; otherwise (NVRAM empty or wiped, or a life record of other keys)
 * this HSM has no past, and new keys are made before anything can use the old ones again. The life
 * record is written last: a crash before it leaves NVRAM empty, and the next open makes new keys.
 */
function openSoftKeys(dir: string): SoftKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyPath = join(dir, "seal.key");
  const identityPath = join(dir, "identity.key");
  const nvram = new NvramFile(join(dir, "nvram.bin"));
  try {
    const record = nvram.readRecord();
    let sealSecret = readKey(keyPath);
    let identityKey = readKey(identityPath);
    const lifeKept =
      record?.kind === "life" &&
      sealSecret !== null &&
      identityKey !== null &&
      bytesEqual(record.data, lifeOf(sealSecret, identityKey));
    let renewed = false;
    if (record === null || (record.kind === "life" && !lifeKept)) {
      sealSecret = new Uint8Array(randomBytes(32));
      identityKey = newIdentityKey();
      writeDurably(keyPath, sealSecret);
      writeDurably(identityPath, identityKey);
      nvram.writeLife(lifeOf(sealSecret, identityKey));
      renewed = true;
    }
    if (sealSecret === null || sealSecret.length !== 32) {
      throw new Error(`${keyPath} is missing or not a 32-byte key`);
    }
    if (identityKey === null) throw new Error(`${identityPath} is missing while NVRAM is not empty`);
    return { sealSecret, identityKey, nvram, renewed };
  } catch (e) {
    nvram.close();
    throw e;
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
  /** How long to wait for another live process to let go of the folder (folder-lock.ts). */
  lockWaitMs?: number;
}

/**
 * Provision a software HSM (run by the provisioning tool, never by the HSM process): make its keys
 * if it has none alive, have the vendor root attest them with the measurement, and write the
 * attestation and that root into its folder (the only root the HSM will trust: provisioned.ts).
 * Idempotent. Returns whether new keys were made. Holds the folder's lock while it works, so it
 * refuses (BkvError UNAVAILABLE) while an HSM process of another pid runs on the folder.
 */
export function provisionSoftwareHsm(o: ProvisionOptions): { renewed: boolean; attestation: Uint8Array } {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const unlock = lockHsmFolder(o.dir, { waitMs: o.lockWaitMs });
  try {
    const keys = openSoftKeys(o.dir);
    try {
      const attestation = attest(o.vendor, softwareBody(keys.identityKey, o.measurement));
      writeProvisioned(o.dir, attestation, o.vendor.publicKey);
      return { renewed: keys.renewed, attestation };
    } finally {
      keys.nvram.close();
    }
  } finally {
    unlock();
  }
}

export interface SoftwarePlatformOptions {
  dir: string;
  /** For tests and the simulator: a clock to use instead of Date.now. */
  now?: () => number;
  /** SHA-256 of the core code this HSM process loaded. */
  measurement: Uint8Array;
  /** How long to wait for another live process to let go of the folder (folder-lock.ts). */
  lockWaitMs?: number;
}

/**
 * The platform of a provisioned software HSM. Throws BkvError ATTESTATION ("needs an attestation")
 * if its folder holds no attestation of its current keys and this measurement by a root listed in
 * vendor-roots.pub, and BkvError UNAVAILABLE if another live process holds the folder. It holds the
 * folder's lock for the rest of this process's life. It trusts in other members' attestations only
 * the roots that verify its own attestation (provisioned.ts).
 */
export function softwarePlatform(opts: SoftwarePlatformOptions): HsmPlatform {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const unlock = lockHsmFolder(opts.dir, { waitMs: opts.lockWaitMs });
  let keys: SoftKeys;
  let own: ReturnType<typeof readOwnAttestation>;
  try {
    keys = openSoftKeys(opts.dir);
  } catch (e) {
    unlock();
    throw e;
  }
  const { nvram } = keys;
  try {
    own = readOwnAttestation(opts.dir, {
      platform: PLATFORM,
      ...identityPublicKeys(keys.identityKey),
      measurement: opts.measurement,
    });
  } catch (e) {
    nvram.close();
    unlock();
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
      attestation: own.attestation,
      vendorRoots: own.vendorRoots,
      measurement: opts.measurement,
    }),
  };
}
