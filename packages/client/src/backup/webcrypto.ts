/**
 * The WebCrypto pieces the backup format needs, written once: reaching `crypto.subtle`, handing it
 * byte arrays in the form its TypeScript types accept, and HKDF-SHA256.
 */
import { BkvError, ErrorCode } from "@bkv/wire";

/** The platform's SubtleCrypto (browsers, Node >= 19, Deno, Bun, workers). */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (s === undefined) {
    throw new BkvError(
      ErrorCode.Unavailable,
      "WebCrypto (crypto.subtle) is not available here; it needs a secure context (https or localhost)",
    );
  }
  return s;
}

/**
 * WebCrypto's types want bytes backed by a plain ArrayBuffer. Views of one pass through unchanged;
 * anything else (a SharedArrayBuffer view) is copied.
 */
export function bufferSource(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

const encoder = new TextEncoder();

/** HKDF-SHA256 (RFC 5869) of `length` bytes. */
export async function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: string,
  length: number,
): Promise<Uint8Array> {
  const s = subtle();
  const base = await s.importKey("raw", bufferSource(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await s.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: bufferSource(salt), info: encoder.encode(info) },
    base,
    length * 8,
  );
  return new Uint8Array(bits);
}
