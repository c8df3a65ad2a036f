/**
 * The test vendor root: an Ed25519 key that stands for an HSM vendor's attestation root on
 * platforms that have none (the software platform, SoftHSM2). `bkv dev` makes one per folder and
 * writes its public key to DIR/vendor-root.pub, which auditors pass to `bkv audit`. Its private
 * key signs the attestations of the HSMs it provisions; development only.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import {
  type AttestationBody,
  attestationSignedBytes,
  BkvError,
  ErrorCode,
  encodeAttestation,
  fromHex,
  toHex,
} from "@bkv/wire";
import { ed25519PublicKeyOf, ed25519SignWith } from "./node-crypto.js";

export interface VendorRoot {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

export function newVendorRoot(): VendorRoot {
  const seed = new Uint8Array(randomBytes(32));
  return { seed, publicKey: ed25519PublicKeyOf(seed) };
}

/** Sign an attestation body with the vendor root: the encoded Attestation. */
export function attest(root: VendorRoot, body: AttestationBody): Uint8Array {
  return encodeAttestation({ ...body, signature: ed25519SignWith(root.seed, attestationSignedBytes(body)) });
}

const PUB_HEADER = "# bkv test vendor root (development only): Ed25519 public key, hex";
const KEY_HEADER = "# bkv test vendor root PRIVATE KEY (development only): Ed25519 seed, hex";

export function writeVendorRoot(root: VendorRoot, keyPath: string, pubPath: string): void {
  writeFileSync(keyPath, `${KEY_HEADER}\n${toHex(root.seed)}\n`, { mode: 0o600 });
  writeFileSync(pubPath, `${PUB_HEADER}\n${toHex(root.publicKey)}\n`, { mode: 0o644 });
}

function readHexLine(path: string, what: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new BkvError(ErrorCode.Invalid, `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length !== 1 || !/^[0-9a-f]{64}$/.test(lines[0]!)) {
    throw new BkvError(ErrorCode.Malformed, `${path} is not a ${what}: expected one line of 64 hex digits`);
  }
  return fromHex(lines[0]!);
}

/** A vendor root public key file (vendor-root.pub). */
export function readVendorRootPub(path: string): Uint8Array {
  return readHexLine(path, "vendor root public key");
}

/** A vendor root private key file (vendor-root.key). */
export function readVendorRootKey(path: string): VendorRoot {
  const seed = readHexLine(path, "vendor root private key");
  return { seed, publicKey: ed25519PublicKeyOf(seed) };
}
