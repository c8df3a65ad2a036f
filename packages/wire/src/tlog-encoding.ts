/**
 * The text encodings the C2SP formats use: standard base64 with padding (RFC 4648 §4), decoded
 * strictly (canonical padding and trailing bits, no whitespace), and decimal integers with no
 * leading zeroes. Both decoders return undefined on anything else; callers choose the error.
 * base64 is @scure/base's (strict RFC 4648; in runtimes with `Uint8Array.fromBase64` it uses that
 * with strict last-chunk handling, and refuses whitespace either way).
 */
import { base64 } from "@scure/base";

export function toBase64(b: Uint8Array): string {
  return base64.encode(b);
}

/** Strict standard base64: length a multiple of 4, padding only at the end, zero trailing bits. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (typeof s !== "string") return undefined;
  try {
    return base64.decode(s);
  } catch {
    return undefined;
  }
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A non-negative decimal integer with no leading zeroes (except "0") that fits a safe integer. */
export function parseDecimal(s: string): number | undefined {
  if (!DECIMAL.test(s) || s.length > 16) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}
