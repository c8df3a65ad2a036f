/**
 * The one signature verifier of everything a client, `bkv audit`, the log and the transparency page
 * check about a fleet: strict Ed25519 (RFC 8032 with noble's zip215: false, plus wire's rules that
 * refuse small-order and non-canonical public keys and signature points), and P-256 points decoded
 * and validated by noble. Pure code, the same verdict in Node and in browsers (node:crypto's
 * Ed25519 accepts a small-order key, so it is not used for any of these checks).
 */
import {
  ed25519VerifyStrict,
  type NoteVerifier,
  noteVerifier,
  parseVerifierKey,
  type VerifierKey,
} from "@bkv/tlog";
import { ed25519PointProblem, toHex } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";

/** Why these 32 bytes are not a strict Ed25519 public key (null: they are). */
export function ed25519KeyProblem(publicKey: Uint8Array): string | null {
  return ed25519PointProblem(publicKey);
}

/**
 * Strict Ed25519 verification: false for a key or signature point that is small-order or
 * non-canonical, for S not below the group order, and for any input that is not the right size.
 * The one implementation is tlog's (the log checks submitter and release signatures with it too).
 */
export const strictEd25519Verify: (
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
) => boolean = ed25519VerifyStrict;

/**
 * The point an Ed25519 encoding names, as canonical hex, or null when it does not decode even
 * leniently: two encodings of one point give the same string (so one key under two encodings never
 * counts as two members).
 */
export function ed25519PointId(encoded: Uint8Array): string | null {
  try {
    return ed25519.Point.fromBytes(encoded, true).toHex();
  } catch {
    return null;
  }
}

/** Why these bytes are not a valid uncompressed P-256 point (SEC1, on the curve, not infinity); null if they are. */
export function p256PointProblem(encoded: Uint8Array): string | null {
  if (encoded.length !== 65 || encoded[0] !== 0x04)
    return `a P-256 agree key is 65 bytes starting 0x04, not ${encoded.length} bytes starting 0x${(encoded[0] ?? 0).toString(16)}`;
  try {
    const p = p256.Point.fromBytes(encoded);
    p.assertValidity();
    if (p.is0()) return "the point at infinity";
    if (toHex(p.toBytes(false)) !== toHex(encoded)) return "non-canonical encoding";
    return null;
  } catch (e) {
    return `not a point on P-256 (${(e as Error).message})`;
  }
}

/**
 * A note verifier (log checkpoint signatures, witness cosignature/v1) that verifies with
 * strictEd25519Verify (or `verify`, a memo of it); the key itself must be strict. Throws on a key
 * that is not.
 */
export function strictNoteVerifier(
  vkey: string | VerifierKey,
  verify: (
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
  ) => boolean = strictEd25519Verify,
): NoteVerifier {
  const k = typeof vkey === "string" ? parseVerifierKey(vkey) : vkey;
  const problem = ed25519PointProblem(k.publicKey);
  if (problem !== null) throw new Error(`the key of ${k.name} is ${problem}`);
  return noteVerifier(k, verify);
}
