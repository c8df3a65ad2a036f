/**
 * Ed25519 signing keys the operator keeps in files: the submitter key of a log namespace (it signs
 * /add calls) and the release key (it signs release entries). One line of 64 hex digits (the seed)
 * after '#' comment lines, mode 0600, made once and never overwritten. Errors name the file, never
 * what it holds.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { BkvError, ErrorCode, fromHex, toHex } from "@bkv/wire";

const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export interface SigningKey {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** Write a new key to `path` (fails if the file exists); returns it. */
export function newSigningKeyFile(path: string, header: string): SigningKey {
  writeFileSync(path, `# ${header}\n${toHex(new Uint8Array(randomBytes(32)))}\n`, {
    mode: 0o600,
    flag: "wx",
  });
  return readSigningKeyFile(path);
}

/** The key in `path`, made there first if there is none. */
export function signingKeyFile(path: string, header: string): SigningKey {
  return existsSync(path) ? readSigningKeyFile(path) : newSigningKeyFile(path, header);
}

export function readSigningKeyFile(path: string): SigningKey {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new BkvError(
      ErrorCode.Invalid,
      `cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length !== 1 || !/^[0-9a-f]{64}$/.test(lines[0]!)) {
    throw new BkvError(
      ErrorCode.Malformed,
      `${path} is not a signing key file: expected one line of 64 hex digits`,
    );
  }
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, fromHex(lines[0]!)]),
    format: "der",
    type: "pkcs8",
  });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return {
    publicKey: new Uint8Array(Buffer.from(jwk.x!, "base64url")),
    sign: (message) => new Uint8Array(sign(null, message, key)),
  };
}
