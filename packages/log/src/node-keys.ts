/**
 * Ed25519 keys of the log and the witness on node:crypto: made on first start, kept in the
 * process's folder as a C2SP signer key (`PRIVATE+KEY+<name>+<id>+base64(type || seed)`), mode 0600.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cosign,
  formatSignerKey,
  formatVerifierKey,
  type NoteSigner,
  parseSignerKey,
  type SignerKey,
} from "@bkv/tlog";

const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export interface NodeKey {
  readonly key: SignerKey;
  /** The C2SP verifier key to publish. */
  readonly vkey: string;
  /** The raw 32-byte Ed25519 public key (what a fleet freezes at genesis as the log's key). */
  readonly publicKey: Uint8Array;
  /** Ed25519 over message, 64 bytes. */
  signRaw(message: Uint8Array): Uint8Array;
  /** A cosignature/v1 signature body (timestamp || Ed25519) over a checkpoint text. */
  cosign(timestamp: number, text: string): Uint8Array;
}

function fromSeed(key: SignerKey): NodeKey {
  const priv: KeyObject = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, key.seed]),
    format: "der",
    type: "pkcs8",
  });
  const jwk = createPublicKey(priv).export({ format: "jwk" });
  const publicKey = new Uint8Array(Buffer.from(jwk.x!, "base64url"));
  const signRaw = (m: Uint8Array) => new Uint8Array(sign(null, m, priv));
  return {
    key,
    vkey: formatVerifierKey({ name: key.name, type: key.type, publicKey }),
    publicKey,
    signRaw,
    cosign: (timestamp, text) => cosign(timestamp, new TextEncoder().encode(text), signRaw),
  };
}

/** Load the key in `file`, or make one (node:crypto randomness) and write it with mode 0600. */
export function loadOrCreateKey(dir: string, file: string, name: string, type: number): NodeKey {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, file);
  if (existsSync(path)) {
    const key = parseSignerKey(readFileSync(path, "utf8").trim());
    if (key.name !== name || key.type !== type) {
      throw new Error(`${path} holds a key for ${key.name} (type ${key.type}), not ${name} (type ${type})`);
    }
    return fromSeed(key);
  }
  const skey = formatSignerKey({ name, type, seed: new Uint8Array(randomBytes(32)) });
  writeFileSync(path, `${skey}\n`, { mode: 0o600, flag: "wx" });
  return fromSeed(parseSignerKey(skey));
}

/** A note signer (type 0x01): Ed25519 over the note text. */
export function ed25519Signer(k: NodeKey): NoteSigner {
  return { name: k.key.name, keyId: k.key.keyId, sign: (text) => k.signRaw(text) };
}
