/**
 * The OPAQUE server setup from the platform's randomness. @serenity-kit/opaque's
 * server.createSetup() takes no randomness: it draws from the global `crypto` (WebAssembly
 * getrandom), which is the host runtime's, not the HSM platform's. Its setup string is opaque-ke's
 * ServerSetup serialization (base64url of 128 bytes), which the library reads back:
 *
 *   oprf_seed (64 bytes) || server AKE private key (32 bytes, ristretto255 scalar, little-endian)
 *   || dummy public key (32 bytes, a ristretto255 point)
 *
 * The two secrets are made here from platform bytes: the OPRF seed as is, the AKE private key as 64
 * bytes reduced modulo the group order (uniform, as RFC 9380 hash_to_field does). The dummy public
 * key only answers logins of users with no record (a fake record); its private key is never used
 * and this core never starts a login without a record, so it is taken from a library setup.
 * opaqueServerSetupFrom checks that the library reads the result back (getPublicKey).
 *
 * The 128 bytes are HKDF-SHA256 of the fleet's signing seed (32 bytes the creator draws from
 * platform.randomBytes), under their own label (opaqueSetupFromSeed). So the setup is as random as
 * the platform's randomness, and drawing it moves no other draw: the simulator's seeded runs stay
 * as they were. The two are fleet secrets kept together in the genesis entry, so deriving one from
 * the other gives no one anything they did not have.
 */

import { fromBase64Url, toBase64Url, utf8 } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import type { HsmCrypto } from "./platform.js";

/** Platform bytes one setup takes: 64 for the OPRF seed, 64 reduced to the AKE private key. */
export const OPAQUE_SETUP_RANDOM_BYTES = 128;

/** The order of the ristretto255 group. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function scalarFrom(wide: Uint8Array): Uint8Array {
  let x = 0n;
  for (let i = wide.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(wide[i]!);
  x %= L;
  if (x === 0n) throw new Error("the platform's randomness gave a zero scalar");
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** An OPAQUE server setup whose secrets are the platform's random bytes (OPAQUE_SETUP_RANDOM_BYTES). */
export function opaqueServerSetupFrom(random: Uint8Array): string {
  if (random.length !== OPAQUE_SETUP_RANDOM_BYTES) {
    throw new Error(`an OPAQUE setup takes ${OPAQUE_SETUP_RANDOM_BYTES} random bytes`);
  }
  const dummy = fromBase64Url(opaque.server.createSetup());
  if (dummy.length !== 128) throw new Error("the OPAQUE library's setup is not 128 bytes");
  const bytes = new Uint8Array(128);
  bytes.set(random.subarray(0, 64), 0);
  bytes.set(scalarFrom(random.subarray(64, 128)), 64);
  bytes.set(dummy.subarray(96, 128), 96);
  const setup = toBase64Url(bytes);
  opaque.server.getPublicKey(setup); // throws if the library does not read it back
  return setup;
}

const SETUP_SALT = utf8("bkv/opaque-setup/v1");

/** The fleet's OPAQUE server setup from its signing seed (platform randomness), by HKDF. */
export function opaqueSetupFromSeed(crypto: Pick<HsmCrypto, "hkdf">, seed: Uint8Array): string {
  if (seed.length !== 32) throw new Error("a fleet seed is 32 bytes");
  return opaqueServerSetupFrom(
    crypto.hkdf(seed, SETUP_SALT, utf8("OPRF seed and AKE private key"), OPAQUE_SETUP_RANDOM_BYTES),
  );
}
