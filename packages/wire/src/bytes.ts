/**
 * Small byte helpers that work the same in Node and browsers. Hex and base64url are @scure/base's
 * (strict: canonical trailing bits, one alphabet, no padding or whitespace); these wrappers only
 * turn its errors into MALFORMED.
 */
import { base64urlnopad, hex } from "@scure/base";
import { BkvError, ErrorCode } from "./errors.js";

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Equality that does not stop at the first difference. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Lowercase hex; either case is accepted when decoding, nothing else. */
export function toHex(b: Uint8Array): string {
  return hex.encode(b);
}

export function fromHex(s: string): Uint8Array {
  try {
    return hex.decode(s);
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, "not a hex string", { cause: e });
  }
}

/** base64url without padding (RFC 4648 §5), as OPAQUE libraries and JWTs use. */
export function toBase64Url(b: Uint8Array): string {
  return base64urlnopad.encode(b);
}

/** Strict base64url decoding: no padding, no other alphabet, canonical trailing bits. */
export function fromBase64Url(s: string): Uint8Array {
  try {
    return base64urlnopad.decode(s);
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, "not canonical base64url text", { cause: e });
  }
}

const enc = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: a leading BOM is kept as U+FEFF, not stripped,
// so decoding then encoding gives back the same bytes (one string, one encoding).
const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

export function fromUtf8(b: Uint8Array): string {
  try {
    return dec.decode(b);
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, "text is not valid UTF-8", { cause: e });
  }
}
