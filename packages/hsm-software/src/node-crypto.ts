/**
 * HsmCrypto on node:crypto (OpenSSL): HPKE from @bkv/hpke, AES-256-GCM and SHA-256 from node:crypto.
 */
import { createCipheriv, createDecipheriv, createHash, type KeyObject } from "node:crypto";
import {
  exportSecret,
  generateX25519KeyPair,
  openFirst,
  rawPublicKey,
  setupRecipient,
  x25519PrivateKey,
} from "@bkv/hpke";
import type { HsmCrypto } from "@bkv/hsm-core";

export function aes256GcmSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Buffer {
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

export function aes256GcmOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Buffer {
  if (sealed.length < 16) throw new Error("ciphertext too short");
  const d = createDecipheriv("aes-256-gcm", key, nonce);
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}

/** Node's HsmCrypto. Caches the parsed private key, which is the vault's long-lived HPKE key. */
export function nodeHsmCrypto(): HsmCrypto {
  let cached: { raw: Buffer; key: KeyObject; pub: Uint8Array } | null = null;
  const keyFor = (raw: Uint8Array) => {
    if (cached === null || !cached.raw.equals(raw)) {
      const key = x25519PrivateKey(raw);
      cached = { raw: Buffer.from(raw), key, pub: rawPublicKey(key) };
    }
    return cached;
  };
  return {
    async hpkeGenerateKeyPair() {
      return generateX25519KeyPair();
    },
    async hpkeOpen(a) {
      const k = keyFor(a.privateKey);
      const ctx = setupRecipient(k.key, k.pub, a.enc, a.info);
      return {
        plaintext: openFirst(ctx, a.aad, a.ciphertext),
        exported: exportSecret(ctx, a.exportContext, a.exportLength),
      };
    },
    async aeadSeal(key, nonce, plaintext, aad) {
      return new Uint8Array(aes256GcmSeal(key, nonce, plaintext, aad));
    },
    sha256(data) {
      return new Uint8Array(createHash("sha256").update(data).digest());
    },
  };
}
