/**
 * HsmCrypto on node:crypto (OpenSSL): HPKE from @bkv/hpke, AES-256-GCM and SHA-256 from node:crypto.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  diffieHellman,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import {
  exportSecret,
  generateX25519KeyPair,
  openFirst,
  rawPublicKey,
  setupRecipient,
  x25519PrivateKey,
  x25519PublicKey,
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
    async aeadOpen(key, nonce, sealed, aad) {
      return new Uint8Array(aes256GcmOpen(key, nonce, sealed, aad));
    },
    hkdf(ikm, salt, info, length) {
      return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
    },
    sha256(data) {
      return new Uint8Array(createHash("sha256").update(data).digest());
    },
  };
}

/** An X25519 identity key held by a platform: its public half and agreement with a peer's key. */
export function x25519Identity(privateKey: Uint8Array): {
  publicKey: Uint8Array;
  agree(peer: Uint8Array): Uint8Array;
} {
  const key = x25519PrivateKey(privateKey);
  return {
    publicKey: rawPublicKey(key),
    agree: (peer) => new Uint8Array(diffieHellman({ privateKey: key, publicKey: x25519PublicKey(peer) })),
  };
}
