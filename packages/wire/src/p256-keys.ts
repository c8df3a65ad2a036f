/**
 * Strict decoding of a P-256 public key (an HSM's identity agreement key), the same wherever it runs
 * (HSM core, Node, browsers): SEC1 uncompressed (0x04 || x || y, 65 bytes), both coordinates below
 * p, and the point on the curve y^2 = x^3 - 3x + b (mod p). P-256 has cofactor 1, so every point on
 * the curve other than infinity (which has no uncompressed encoding) is in the prime-order group,
 * and a canonical encoding is the point's only one.
 */

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

function bigEndian(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** Why these bytes are not a valid uncompressed P-256 point (null: they are). */
export function p256PointProblem(encoded: Uint8Array): string | null {
  if (encoded.length !== 65) return `an uncompressed P-256 point is 65 bytes, not ${encoded.length}`;
  if (encoded[0] !== 0x04) return "not an uncompressed P-256 point (first byte is not 0x04)";
  const x = bigEndian(encoded.subarray(1, 33));
  const y = bigEndian(encoded.subarray(33, 65));
  if (x >= P || y >= P) return "non-canonical encoding (a coordinate is not below p)";
  if ((y * y - (x * x * x - 3n * x + B)) % P !== 0n) return "not a point on the P-256 curve";
  return null;
}
