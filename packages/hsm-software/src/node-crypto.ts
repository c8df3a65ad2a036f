/**
 * HsmCrypto on node:crypto (OpenSSL): HPKE from @bkv/hpke, AES-256-GCM and SHA-256 from node:crypto.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPrivateKey,
  createPublicKey,
  hash,
  hkdfSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
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
    async aeadOpen(key, nonce, sealed, aad) {
      return new Uint8Array(aes256GcmOpen(key, nonce, sealed, aad));
    },
    hkdf(ikm, salt, info, length) {
      return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
    },
    sha256(data) {
      // One-shot hash: about a third of createHash's cost for the short inputs the core hashes.
      return new Uint8Array(hash("sha256", data, "buffer"));
    },
    ed25519PublicKey: ed25519PublicKeyOf,
    ed25519Sign: ed25519SignWith,
    ed25519Verify: ed25519VerifyWith,
  };
}

const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

export function ed25519PublicKeyOf(seed: Uint8Array): Uint8Array {
  const jwk = createPublicKey(ed25519PrivateKey(seed)).export({ format: "jwk" });
  return new Uint8Array(Buffer.from(jwk.x as string, "base64url"));
}

export function ed25519SignWith(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, ed25519PrivateKey(seed)));
}

export function ed25519VerifyWith(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
      format: "der",
      type: "spki",
    });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** A P-256 ECDH key held by a platform: its SEC1 uncompressed public key and agreement with a peer's. */
export function p256Identity(privateKey: Uint8Array): {
  publicKey: Uint8Array;
  agree(peer: Uint8Array): Uint8Array;
} {
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(privateKey);
  return {
    publicKey: new Uint8Array(ecdh.getPublicKey(null, "uncompressed")),
    agree: (peer) => new Uint8Array(ecdh.computeSecret(peer)),
  };
}

export function newP256PrivateKey(): Uint8Array {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  return new Uint8Array(ecdh.getPrivateKey());
}
