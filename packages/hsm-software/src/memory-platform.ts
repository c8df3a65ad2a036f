/**
 * An HSM platform whose seal key and NVRAM live in a plain object instead of files, for tests and
 * the simulator. Keep the MemoryHsm and build a new platform from it to "restart" the same HSM.
 */
import { randomBytes } from "node:crypto";
import type { HsmPlatform } from "@bkv/hsm-core";
import { aes256GcmOpen, aes256GcmSeal, nodeHsmCrypto } from "./node-crypto.js";

export interface MemoryHsm {
  sealKey: Uint8Array;
  nvram: Uint8Array | null;
}

export function newMemoryHsm(): MemoryHsm {
  return { sealKey: new Uint8Array(randomBytes(32)), nvram: null };
}

export function memoryPlatform(hsm: MemoryHsm, now: () => number = () => Date.now()): HsmPlatform {
  return {
    now,
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
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
