/** Ed25519 encodings a strict verifier refuses, for tests. */
const P = (1n << 255n) - 19n;
export function le(v: bigint): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    b[i] = Number(v & 255n);
    v >>= 8n;
  }
  return b;
}
/** The identity point (y = 1, x = 0): order 1. */
export const IDENTITY = le(1n);
/** R = identity, S = 0: "verifies" under the identity key for every message with a lenient verifier. */
export const FORGED = new Uint8Array([...IDENTITY, ...new Uint8Array(32)]);
/** y = 3 is a point of large order; y + p is its second, non-canonical encoding. */
export const CANONICAL_Y3 = le(3n);
export const NONCANONICAL_Y3 = le(3n + P);
