/**
 * An HSM platform whose seal key and NVRAM live in a plain object instead of files, for tests and
 * the simulator. Keep the MemoryHsm and build a new platform from it to "restart" the same HSM.
 */
import { randomBytes } from "node:crypto";
import { generateX25519KeyPair } from "@bkv/hpke";
import type { HsmPlatform } from "@bkv/hsm-core";
import { aes256GcmOpen, aes256GcmSeal, nodeHsmCrypto, x25519Identity } from "./node-crypto.js";

export interface MemoryHsm {
  sealKey: Uint8Array;
  identityKey: Uint8Array;
  nvram: Uint8Array | null;
}

export function newMemoryHsm(): MemoryHsm {
  return {
    sealKey: new Uint8Array(randomBytes(32)),
    identityKey: generateX25519KeyPair().privateKey,
    nvram: null,
  };
}

export interface MemoryPlatformOptions {
  now?: () => number;
  /** Deterministic randomness for the simulator (default: crypto.randomBytes). */
  random?: (n: number) => Uint8Array;
}

export function memoryPlatform(
  hsm: MemoryHsm,
  opts: MemoryPlatformOptions | (() => number) = {},
): HsmPlatform {
  const o = typeof opts === "function" ? { now: opts } : opts;
  const identity = x25519Identity(hsm.identityKey);
  return {
    now: o.now ?? (() => Date.now()),
    randomBytes: o.random ?? ((n) => new Uint8Array(randomBytes(n))),
    async identityPublicKey() {
      return identity.publicKey;
    },
    async identityAgree(peer) {
      return identity.agree(peer);
    },
    crypto: nodeHsmCrypto(),
    async seal(plaintext, aad) {
      const nonce = randomBytes(12);
      return new Uint8Array(Buffer.concat([nonce, aes256GcmSeal(hsm.sealKey, nonce, plaintext, aad)]));
    },
    async unseal(sealed, aad) {
      if (sealed.length < 28) throw new Error("sealed blob too short");
      return new Uint8Array(aes256GcmOpen(hsm.sealKey, sealed.subarray(0, 12), sealed.subarray(12), aad));
    },
    async nvramRead() {
      return hsm.nvram === null ? null : hsm.nvram.slice();
    },
    async nvramWrite(data) {
      hsm.nvram = data.slice();
    },
  };
}
