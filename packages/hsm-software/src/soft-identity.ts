/**
 * The identity keys of a software or in-memory HSM: an Ed25519 signing seed and a P-256 ECDH
 * private key, 64 bytes in all, made on first start and never exported, and the attestation the
 * test vendor root signs over them and the measurement of the code this HSM runs.
 */
import { randomBytes } from "node:crypto";
import type { HsmPlatform } from "@bkv/hsm-core";
import type { AttestationBody } from "@bkv/wire";
import { ed25519PublicKeyOf, ed25519SignWith, newP256PrivateKey, p256Identity } from "./node-crypto.js";
import { attest, type VendorRoot } from "./vendor-root.js";

export const IDENTITY_KEY_LENGTH = 64;

export function newIdentityKey(): Uint8Array {
  const out = new Uint8Array(IDENTITY_KEY_LENGTH);
  out.set(randomBytes(32), 0);
  out.set(newP256PrivateKey(), 32);
  return out;
}

export interface SoftIdentityOptions {
  /** The 64 bytes from newIdentityKey. */
  identityKey: Uint8Array;
  /** Signs this HSM's attestation (development: the folder's test vendor root). */
  vendor: VendorRoot;
  /** Vendor roots whose attestations this HSM accepts (default: the one above). */
  vendorRoots?: Uint8Array[];
  measurement: Uint8Array;
  platform: string;
  vendorNote: string;
  properties: string[];
}

/** The identity half of an HsmPlatform. */
export function softIdentity(
  o: SoftIdentityOptions,
): Pick<HsmPlatform, "identity" | "identitySign" | "identityAgree" | "vendorRoots" | "measurement"> {
  if (o.identityKey.length !== IDENTITY_KEY_LENGTH) {
    throw new Error(
      `an identity key is ${IDENTITY_KEY_LENGTH} bytes (this one was made by an older version)`,
    );
  }
  const signSeed = o.identityKey.slice(0, 32);
  const agree = p256Identity(o.identityKey.slice(32));
  const body: AttestationBody = {
    platform: o.platform,
    vendor: o.vendorNote,
    signKey: ed25519PublicKeyOf(signSeed),
    agreeKey: agree.publicKey,
    measurement: o.measurement,
    properties: o.properties,
  };
  const attestation = attest(o.vendor, body);
  const roots = o.vendorRoots ?? [o.vendor.publicKey];
  return {
    async identity() {
      return attestation;
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
