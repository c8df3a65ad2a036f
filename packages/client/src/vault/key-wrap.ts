/**
 * K never reaches the vault in the clear: the client wraps it under a key derived from OPAQUE's
 * export key (HKDF-SHA256, then AES-256-GCM), bound to the user id. Format: version(1) | nonce(12)
 * | ciphertext+tag(48).
 */
import { BkvError, concatBytes, ErrorCode, utf8 } from "@bkv/wire";

const VERSION = 1;
const WRAP_INFO = utf8("bkv wrap key v1");

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle;
}

async function wrappingKey(exportKey: Uint8Array): Promise<CryptoKey> {
  const ikm = await subtle().importKey("raw", exportKey as BufferSource, "HKDF", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: WRAP_INFO as BufferSource },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function aad(user: string): Uint8Array {
  return concatBytes(utf8("bkv wrapped key v1\0"), utf8(user));
}

export async function wrapBackupKey(
  exportKey: Uint8Array,
  user: string,
  backupKey: Uint8Array,
): Promise<Uint8Array> {
  if (backupKey.length !== 32) throw new BkvError(ErrorCode.Invalid, "backup key must be 32 bytes");
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad(user) as BufferSource },
    await wrappingKey(exportKey),
    backupKey as BufferSource,
  );
  return concatBytes(Uint8Array.of(VERSION), nonce, new Uint8Array(ct));
}

export async function unwrapBackupKey(
  exportKey: Uint8Array,
  user: string,
  wrapped: Uint8Array,
): Promise<Uint8Array> {
  if (wrapped.length !== 1 + 12 + 48 || wrapped[0] !== VERSION) {
    throw new BkvError(ErrorCode.Malformed, "wrapped backup key has an unknown format");
  }
  try {
    const pt = await subtle().decrypt(
      {
        name: "AES-GCM",
        iv: wrapped.subarray(1, 13) as BufferSource,
        additionalData: aad(user) as BufferSource,
      },
      await wrappingKey(exportKey),
      wrapped.subarray(13) as BufferSource,
    );
    return new Uint8Array(pt);
  } catch (e) {
    throw new BkvError(ErrorCode.Authentication, "wrapped backup key does not open with this login", {
      cause: e,
    });
  }
}
