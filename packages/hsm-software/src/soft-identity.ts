/**
 * The identity keys of a software or in-memory HSM: an Ed25519 signing seed and a P-256 ECDH
 * private key, 64 bytes in all, made by the HSM's platform and never exported; their public halves,
 * which the provisioning tool has a vendor root attest; and the seal key, derived from the
 * platform's master seal secret and the measurement of the core it loaded.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import type { HsmPlatform } from "@bkv/hsm-core";
import { BkvError, ErrorCode, utf8 } from "@bkv/wire";
import {
  aes256GcmOpen,
  aes256GcmSeal,
  ed25519PublicKeyOf,
  ed25519SignWith,
  newP256PrivateKey,
  p256Identity,
} from "./node-crypto.js";

export const IDENTITY_KEY_LENGTH = 64;

export function newIdentityKey(): Uint8Array {
  const out = new Uint8Array(IDENTITY_KEY_LENGTH);
  out.set(randomBytes(32), 0);
  out.set(newP256PrivateKey(), 32);
  return out;
}

function checkLength(identityKey: Uint8Array): void {
  if (identityKey.length !== IDENTITY_KEY_LENGTH) {
    throw new Error(
      `an identity key is ${IDENTITY_KEY_LENGTH} bytes (this one was made by an older version)`,
    );
  }
}

/** The public halves of an identity key: what an attestation names. */
export function identityPublicKeys(identityKey: Uint8Array): { signKey: Uint8Array; agreeKey: Uint8Array } {
  checkLength(identityKey);
  return {
    signKey: ed25519PublicKeyOf(identityKey.slice(0, 32)),
    agreeKey: p256Identity(identityKey.slice(32)).publicKey,
  };
}

export interface SoftIdentityOptions {
  /** The 64 bytes from newIdentityKey. */
  identityKey: Uint8Array;
  /** This HSM's attestation of exactly these keys and measurement (checked by the caller). */
  attestation: Uint8Array;
  /** Vendor roots whose attestations this HSM accepts from other members. */
  vendorRoots: Uint8Array[];
  measurement: Uint8Array;
}

/** The identity half of an HsmPlatform. */
export function softIdentity(
  o: SoftIdentityOptions,
): Pick<HsmPlatform, "identity" | "identitySign" | "identityAgree" | "vendorRoots" | "measurement"> {
  checkLength(o.identityKey);
  const signSeed = o.identityKey.slice(0, 32);
  const agree = p256Identity(o.identityKey.slice(32));
  const roots = o.vendorRoots.map((r) => r.slice());
  return {
    async identity() {
      return o.attestation;
    },
    async identitySign(message) {
      return ed25519SignWith(signSeed, message);
    },
    async identityAgree(peer) {
      return agree.agree(peer);
    },
    vendorRoots: () => roots,
    measurement: () => o.measurement,
  };
}

const SEAL_SALT = utf8("bkv/seal-key/v1");

/**
 * The seal key of one core on one HSM: HKDF-SHA256 of the platform's master seal secret, with the
 * measurement of the loaded core as info. Another core (other bytes, another measurement) gets
 * another key, so it cannot open what this core sealed.
 */
export function sealKeyFor(masterSecret: Uint8Array, measurement: Uint8Array): Uint8Array {
  if (masterSecret.length !== 32) throw new Error("a master seal secret is 32 bytes");
  if (measurement.length !== 32) throw new Error("a measurement is 32 bytes");
  return new Uint8Array(hkdfSync("sha256", masterSecret, SEAL_SALT, measurement, 32));
}

/** seal/unseal under a measurement's seal key (AES-256-GCM, random 12-byte nonce first). */
export function softSeal(
  masterSecret: Uint8Array,
  measurement: Uint8Array,
): Pick<HsmPlatform, "seal" | "unseal"> {
  const key = sealKeyFor(masterSecret, measurement);
  return {
    async seal(plaintext, aad) {
      const nonce = randomBytes(12);
      return new Uint8Array(Buffer.concat([nonce, aes256GcmSeal(key, nonce, plaintext, aad)]));
    },
    async unseal(sealed, aad) {
      if (sealed.length < 28) throw new BkvError(ErrorCode.Malformed, "sealed blob too short");
      try {
        return new Uint8Array(aes256GcmOpen(key, sealed.subarray(0, 12), sealed.subarray(12), aad));
      } catch {
        throw new BkvError(
          ErrorCode.Authentication,
          "unseal: the blob does not open under this HSM's seal key for the loaded core (sealed by other code, another HSM, or altered)",
        );
      }
    },
  };
}
