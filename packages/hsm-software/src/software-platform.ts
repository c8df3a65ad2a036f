/**
 * The software HSM platform: the HSM's secrets live in its own folder (DIR/node-<i>/hsm/), apart
 * from the host's storage. seal.key and identity.key never leave this process; nvram.bin stands for the HSM's NVRAM
 * (a double-buffered file, nvram-file.ts). For development and tests, not production.
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
  let sealKey = readIfExists(keyPath);
  if (sealKey === null) {
    sealKey = randomBytes(32);
    writeDurably(keyPath, sealKey);
  }
  if (sealKey.length !== 32) throw new Error(`${keyPath} is not a 32-byte key`);
  const key = sealKey;
  // The HSM's identity keys: made here on first start, never leave this folder or this process.
  const identityPath = join(opts.dir, "identity.key");
  let identityKey = readIfExists(identityPath);
  if (identityKey === null) {
    identityKey = Buffer.from(newIdentityKey());
    writeDurably(identityPath, identityKey);
  }
  const identity = softIdentity({
    identityKey,
    vendor: opts.vendor,
    measurement: opts.measurement,
    platform: "software",
    vendorNote:
      "bkv test vendor root: software platform, keys in files of the HSM's folder, no hardware protection (development only)",
    properties: ["keys: files in the HSM folder, mode 0600", "nvram: file in the HSM folder"],
  });
  const nvram = new NvramFile(join(opts.dir, "nvram.bin"));
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
