/**
 * The software HSM platform: the HSM's secrets live in its own folder (DIR/node-<i>/hsm/), apart
 * from the host's storage. seal.key and identity.key never leave this process; nvram.bin stands for the HSM's NVRAM
 * (a double-buffered file, nvram-file.ts). Keys and NVRAM live and die together: a start that finds
 * no NVRAM makes new seal and identity keys. For development and tests, not production.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HsmPlatform } from "@bkv/hsm-core";
import { aes256GcmOpen, aes256GcmSeal, nodeHsmCrypto } from "./node-crypto.js";
import { NvramFile } from "./nvram-file.js";
import { newIdentityKey, softIdentity } from "./soft-identity.js";
import type { VendorRoot } from "./vendor-root.js";

function readIfExists(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function writeDurably(path: string, data: Uint8Array, mode = 0o600): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(join(path, ".."), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export interface SoftwarePlatformOptions {
  dir: string;
  /** For tests and the simulator: a clock to use instead of Date.now. */
  now?: () => number;
  /** The test vendor root that attests this HSM's keys. */
  vendor: VendorRoot;
  /** SHA-256 of the core code this HSM process loaded. */
  measurement: Uint8Array;
}

export function softwarePlatform(opts: SoftwarePlatformOptions): HsmPlatform {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const keyPath = join(opts.dir, "seal.key");
  const identityPath = join(opts.dir, "identity.key");
  const nvram = new NvramFile(join(opts.dir, "nvram.bin"));
  // Keys and NVRAM live and die together. With no NVRAM this HSM has no past: whatever keys the
  // folder holds are replaced by new ones before anything can use them, so nothing sealed or signed
  // under an old identity opens or counts again. The core writes NVRAM only after this, so a crash
  // in between leaves no NVRAM, and the next start makes new keys again: never old keys, new NVRAM.
  if (nvram.read() === null) {
    writeDurably(keyPath, randomBytes(32));
    writeDurably(identityPath, newIdentityKey());
  }
  const sealKey = readIfExists(keyPath);
  if (sealKey === null || sealKey.length !== 32)
    throw new Error(`${keyPath} is missing or not a 32-byte key`);
  const key = sealKey;
  // The HSM's identity keys: never leave this folder or this process.
  const identityKey = readIfExists(identityPath);
  if (identityKey === null) throw new Error(`${identityPath} is missing while NVRAM is not empty`);
  const identity = softIdentity({
    identityKey,
    vendor: opts.vendor,
    measurement: opts.measurement,
    platform: "software",
    vendorNote:
      "bkv test vendor root: software platform, keys in files of the HSM's folder, no hardware protection (development only)",
    properties: ["keys: files in the HSM folder, mode 0600", "nvram: file in the HSM folder"],
  });
  return {
    now: opts.now ?? (() => Date.now()),
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
    crypto: nodeHsmCrypto(),
    async seal(plaintext, aad) {
      const nonce = randomBytes(12);
      return new Uint8Array(Buffer.concat([nonce, aes256GcmSeal(key, nonce, plaintext, aad)]));
    },
    async unseal(sealed, aad) {
      if (sealed.length < 28) throw new Error("sealed blob too short");
      return new Uint8Array(aes256GcmOpen(key, sealed.subarray(0, 12), sealed.subarray(12), aad));
    },
    async nvramRead() {
      return nvram.read();
    },
    async nvramWrite(data) {
      nvram.write(data);
    },
    ...identity,
  };
}
