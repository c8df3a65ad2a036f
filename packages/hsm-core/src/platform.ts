import type { Attestation } from "@bkv/wire";

/**
 * What the HSM core needs from the HSM it runs in. The core calls nothing else: no Node, network
 * or file APIs. Adapters live in packages/hsm-software (dev, tests) and packages/hsm-pkcs11 (PKCS#11 tokens).
 */

/** The cryptography the HSM provides. Implementations must be constant-time where it matters. */
export interface HsmCrypto {
  /** X25519 key pair for HPKE (RFC 9180 DHKEM(X25519, HKDF-SHA256)). */
  hpkeGenerateKeyPair(): Promise<{ privateKey: Uint8Array; publicKey: Uint8Array }>;
  /**
   * HPKE base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM: set up the
   * recipient context, open the first message and export a secret from the same context.
   * Throws on any failure (bad enc, failed authentication).
   */
  hpkeOpen(args: {
    privateKey: Uint8Array;
    enc: Uint8Array;
    info: Uint8Array;
    aad: Uint8Array;
    ciphertext: Uint8Array;
    exportContext: Uint8Array;
    exportLength: number;
  }): Promise<{ plaintext: Uint8Array; exported: Uint8Array }>;
  /** AES-256-GCM with a 12-byte nonce; output is ciphertext || 16-byte tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** Inverse of aeadSeal; throws if it does not authenticate. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** HKDF-SHA256 (RFC 5869). */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /** Synchronous: the log's hash chain is computed as entries are appended. */
  sha256(data: Uint8Array): Uint8Array;
  /** Ed25519 (RFC 8032): public key of a 32-byte seed. For the fleet signing key. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 signature with a 32-byte seed. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Ed25519 verification; false (never a throw) for any malformed key or signature. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface HsmPlatform {
  /** Milliseconds since the epoch. The host may control this clock: the core only ever moves forward. */
  now(): number;
  /**
   * The HSM's randomness: every secret the core makes comes from here (keys, nonces, the OPAQUE
   * server setup, derived from the fleet signing seed: opaque-setup.ts), except what
   * @serenity-kit/opaque draws itself during a login (docs/platforms.md).
   */
  randomBytes(n: number): Uint8Array;
  crypto: HsmCrypto;
  /**
   * Encrypt and authenticate under a key that never leaves this HSM and is derived from the
   * platform's master seal secret and measurement(): code with another measurement gets another
   * key, so it cannot open what this code sealed.
   */
  seal(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /**
   * Inverse of seal; throws (BkvError AUTHENTICATION) if the blob was not sealed by this HSM, for
   * this measurement, with this aad.
   */
  unseal(sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** A few hundred bytes that survive restarts and that the host cannot read, write or roll back. */
  nvramRead(): Promise<Uint8Array | null>;
  nvramWrite(data: Uint8Array): Promise<void>;
  /**
   * This HSM's attested identity (an encoded Attestation from @bkv/wire): an Ed25519 signing key
   * and a P-256 agreement key, both made inside and never exported, and the measurement of the
   * code this HSM runs, signed by the platform's vendor root. The platform only holds it (made at
   * provisioning, outside the HSM process on the development platforms) and checks it is its own.
   */
  identity(): Promise<Uint8Array>;
  /** Ed25519 signature with the identity signing key. */
  identitySign(message: Uint8Array): Promise<Uint8Array>;
  /** ECDH on P-256 (identity agreement key, peer's SEC1 public key): the 32-byte shared x. */
  identityAgree(peerAgreeKey: Uint8Array): Promise<Uint8Array>;
  /**
   * Vendor root public keys (Ed25519) whose attestations this HSM accepts from other members: fixed
   * when the HSM was provisioned (or in the platform's code), never chosen by the host at run time.
   */
  vendorRoots(): Uint8Array[];
  /**
   * For members attested by a vendor document instead of a vendor root's Ed25519 signature (the
   * second attestation kind: AWS Nitro): throw (BkvError) unless the document of `attestation` is
   * genuine under the roots this platform's own measured code fixes, and names its keys and
   * measurement. Platforms without it refuse such members at genesis.
   */
  verifyVendorDocument?(attestation: Attestation): void;
  /** SHA-256 of the HSM core code this HSM runs, as its platform measured it when loading it. */
  measurement(): Uint8Array;
}
