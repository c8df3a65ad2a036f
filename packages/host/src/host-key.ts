/**
 * Host keys: each host agent of a fleet has an Ed25519 key pair. The private key stays in the host's
 * folder (PKCS#8 PEM, mode 0600); every other host's config lists its public key (hex), so only the
 * fleet's configured hosts can open a peer stream (peer-handshake.ts). These keys keep strangers off
 * the peer port; they are not the HSMs' keys, which authenticate peer messages end to end.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { BkvError, ErrorCode, fromBase64Url, fromHex, toBase64Url, toHex } from "@bkv/wire";

export interface HostKey {
  privateKey: KeyObject;
  /** The raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

function rawPublic(k: KeyObject): Uint8Array {
  const jwk = k.export({ format: "jwk" }) as { x?: string };
  return fromBase64Url(jwk.x ?? "");
}

/** Make a new host key in `path` (which must not exist); returns its public key in hex. */
export function writeNewHostKey(path: string): string {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  try {
    writeFileSync(path, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: "wx" });
  } catch (e) {
    const exists = (e as NodeJS.ErrnoException).code === "EEXIST";
    throw new BkvError(
      ErrorCode.Invalid,
      exists ? `${path} exists: a host key is never overwritten` : `cannot write the host key ${path}`,
      { cause: e },
    );
  }
  return toHex(rawPublic(publicKey));
}

export function readHostKey(path: string): HostKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new BkvError(ErrorCode.Invalid, `cannot read the host key ${path}`, { cause: e });
  }
  if (privateKey.asymmetricKeyType !== "ed25519")
    throw new BkvError(ErrorCode.Invalid, `the host key ${path} is not an Ed25519 key`);
  return { privateKey, publicKey: rawPublic(createPublicKey(privateKey)) };
}

/** A peer host's public key from its hex form in a host config. */
export function hostPublicKey(hex: string): KeyObject {
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new BkvError(ErrorCode.Invalid, "a host key is 32 bytes of lowercase hex");
  return createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: toBase64Url(fromHex(hex)) },
    format: "jwk",
  });
}
