/**
 * Strict decoding rules for Ed25519 public keys and signature points, the same wherever they run
 * (HSM core, Node, browsers), so that no verifier's leniency decides what a fleet's evidence means.
 *
 * A point is refused if its encoding is not canonical (y >= p, or x = 0 with the sign bit set) or if
 * it has small order (8P = identity). Every point of small order has y in
 * {0, 1, p - 1, c, p - c} for the one value c below (the points of order 8), whatever its sign bit;
 * a small-order public key lets a signature with R = identity and S = 0 "verify" for any message.
 */

const P = (1n << 255n) - 19n;
/** y of the points of order 8 (and p - C), computed as the y of 8-torsion points. */
const C = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, C, P - C]);
/** The order of the prime-order subgroup; a canonical S is below it. */
export const ED25519_L = (1n << 252n) + 27742317777372353535851937790883648493n;

function littleEndian(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

/** Why this 32-byte encoding is not a strict Ed25519 point (null: it is acceptable as far as encoding goes). */
export function ed25519PointProblem(encoded: Uint8Array): string | null {
  if (encoded.length !== 32) return `an Ed25519 point is 32 bytes, not ${encoded.length}`;
  const sign = (encoded[31]! & 0x80) !== 0;
  const y = littleEndian(encoded) & ((1n << 255n) - 1n);
  if (y >= P) return "non-canonical encoding (y is not below p)";
  if (sign && (y === 1n || y === P - 1n)) return "non-canonical encoding (x = 0 with the sign bit set)";
  if (SMALL_ORDER_Y.has(y)) return "a point of small order";
  return null;
}

/** Why this 64-byte signature is not strict (R a strict point, S below L); null if it is. */
export function ed25519SignatureProblem(signature: Uint8Array): string | null {
  if (signature.length !== 64) return `an Ed25519 signature is 64 bytes, not ${signature.length}`;
  const r = ed25519PointProblem(signature.subarray(0, 32));
  if (r !== null) return `its R is ${r}`;
  if (littleEndian(signature.subarray(32)) >= ED25519_L) return "its S is not below the group order";
  return null;
}
