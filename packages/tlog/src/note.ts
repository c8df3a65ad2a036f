/**
 * C2SP signed-note (c2sp.org/signed-note) with Ed25519 signatures (type 0x01) and the Ed25519
 * checkpoint cosignatures of c2sp.org/tlog-cosignature (cosignature/v1, type 0x04).
 *
 * A note is text ending in a newline, a blank line, then signature lines
 * `— <key name> base64(key ID || signature)`. Verifier keys are `<name>+<hex key ID>+base64(type ||
 * public key)`; signer keys `PRIVATE+KEY+<name>+<hex key ID>+base64(type || Ed25519 seed)`.
 * key ID = SHA-256(name || 0x0A || type || public key)[:4], big-endian.
 *
 * Everything here is pure and browser-safe (Ed25519 from @noble/curves). Notes are
 * attacker-controlled: parsing is strict, unknown keys are ignored, a known key's bad signature
 * rejects the whole note, and a note no known key signed is rejected.
 */
import {
  badKey,
  checkNoteText,
  concatBytes,
  cosignatureMessage,
  ed25519PointProblem,
  ed25519SignatureProblem,
  formatNote,
  isValidKeyName,
  keyIdHex,
  keyIdWith,
  type NoteSignature,
  type NoteVerifier,
  noteVerifierWith,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  TlogError,
  TlogErrorCode,
  utf8,
  type VerifierKey,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { fromBase64, toBase64 } from "./encoding.js";

// The parts that need no cryptography of their own live in @bkv/wire (signed-note.ts), so the
// HSM core opens checkpoints with the same code.
export {
  cosignatureMessage,
  formatNote,
  formatSignatureLine,
  isValidKeyName,
  keyIdHex,
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  type Note,
  type NoteSignature,
  type NoteVerifier,
  type OpenedNote,
  openNote,
  parseNote,
  parseSignatureLines,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  type VerifiedSignature,
  type VerifierKey,
} from "@bkv/wire";

export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  return keyIdWith(sha256, name, type, publicKey);
}

/**
 * A verifier for an Ed25519 (0x01) or cosignature/v1 (0x04) verifier key. `verify` checks each
 * Ed25519 signature (default ed25519VerifyStrict; a caller may pass a memo of it).
 */
export function noteVerifier(
  vkey: string | VerifierKey,
  verify: (
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
  ) => boolean = ed25519VerifyStrict,
): NoteVerifier {
  const k = typeof vkey === "string" ? parseVerifierKey(vkey) : vkey;
  return noteVerifierWith(sha256, k, verify);
}

export interface SignerKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** The 32-byte Ed25519 seed (RFC 8032 private key). */
  readonly seed: Uint8Array;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  sign(text: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

function parseKeyParts(
  s: string,
  what: string,
): { name: string; keyId: number; type: number; key: Uint8Array } {
  const a = s.indexOf("+");
  const b = a < 0 ? -1 : s.indexOf("+", a + 1);
  if (a < 0 || b < 0) throw badKey(`${what}: expected <name>+<key ID>+<key>`);
  const name = s.slice(0, a);
  const idHex = s.slice(a + 1, b);
  const key = fromBase64(s.slice(b + 1));
  if (!isValidKeyName(name)) throw badKey(`${what}: bad key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw badKey(`${what}: the key ID must be 8 lowercase hex digits`);
  if (key === undefined || key.length < 2) throw badKey(`${what}: the key is not base64 of type || key`);
  const type = key[0]!;
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) {
    throw badKey(`${what}: unsupported signature type 0x${type.toString(16).padStart(2, "0")}`);
  }
  if (key.length !== 33) throw badKey(`${what}: an Ed25519 key is 32 bytes, got ${key.length - 1}`);
  return { name, keyId: Number.parseInt(idHex, 16), type, key: key.slice(1) };
}

/** Parse a verifier key (vkey) of type 0x01 (Ed25519) or 0x04 (cosignature/v1). */
export function parseVerifierKey(vkey: string): VerifierKey {
  const { name, keyId: id, type, key } = parseKeyParts(vkey, "verifier key");
  if (keyId(name, type, key) !== id) throw badKey("verifier key: the key ID does not match the key");
  return { name, keyId: id, type, publicKey: key };
}

export function formatVerifierKey(k: { name: string; type: number; publicKey: Uint8Array }): string {
  if (!isValidKeyName(k.name)) throw badKey(`bad key name ${JSON.stringify(k.name)}`);
  if (k.publicKey.length !== 32) throw badKey("an Ed25519 public key is 32 bytes");
  const id = keyId(k.name, k.type, k.publicKey);
  return `${k.name}+${keyIdHex(id)}+${toBase64(concatBytes(new Uint8Array([k.type]), k.publicKey))}`;
}

export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw badKey("an Ed25519 seed is 32 bytes");
  return ed25519.getPublicKey(seed);
}

/** Parse a signer key `PRIVATE+KEY+<name>+<key ID>+base64(type || seed)`. */
export function parseSignerKey(skey: string): SignerKey {
  const prefix = "PRIVATE+KEY+";
  if (!skey.startsWith(prefix)) throw badKey("signer key: must start with PRIVATE+KEY+");
  const { name, keyId: id, type, key } = parseKeyParts(skey.slice(prefix.length), "signer key");
  if (keyId(name, type, ed25519PublicKey(key)) !== id)
    throw badKey("signer key: the key ID does not match the key");
  return { name, keyId: id, type, seed: key };
}

export function formatSignerKey(k: { name: string; type: number; seed: Uint8Array }): string {
  if (!isValidKeyName(k.name)) throw badKey(`bad key name ${JSON.stringify(k.name)}`);
  const id = keyId(k.name, k.type, ed25519PublicKey(k.seed));
  return `PRIVATE+KEY+${k.name}+${keyIdHex(id)}+${toBase64(concatBytes(new Uint8Array([k.type]), k.seed))}`;
}

/** The verifier key of a signer key. */
export function verifierKeyOf(k: SignerKey): VerifierKey {
  return { name: k.name, keyId: k.keyId, type: k.type, publicKey: ed25519PublicKey(k.seed) };
}

/** A new random key pair (randomness from the platform's crypto.getRandomValues). */
export function generateSignerKey(name: string, type: number = SIG_ED25519): { skey: string; vkey: string } {
  const seed = ed25519.utils.randomSecretKey();
  const skey = formatSignerKey({ name, type, seed });
  return { skey, vkey: formatVerifierKey(verifierKeyOf(parseSignerKey(skey))) };
}

/**
 * Ed25519, strictly (checkpoints, cosignatures, submitter and release signatures, evidence alike):
 * the key and R canonical and not of small order, S below the group order (@bkv/wire's rules), and
 * the cofactorless equation (noble with zip215: false, as node:crypto and Go verify).
 */
export function ed25519VerifyStrict(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (ed25519PointProblem(publicKey) !== null || ed25519SignatureProblem(signature) !== null) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function ed25519NoteSigner(skey: string | SignerKey): NoteSigner {
  const k = typeof skey === "string" ? parseSignerKey(skey) : skey;
  if (k.type !== SIG_ED25519) throw badKey("not an Ed25519 (type 0x01) signer key");
  const seed = k.seed.slice();
  return { name: k.name, keyId: k.keyId, sign: (text) => ed25519.sign(text, seed) };
}

/**
 * A cosignature/v1 (0x04) signer: signs "cosignature/v1\ntime <now>\n" || text and returns
 * timestamp (u64 big-endian) || signature. `now` gives POSIX seconds.
 */
export function cosignatureSigner(skey: string | SignerKey, now: () => number): NoteSigner {
  const k = typeof skey === "string" ? parseSignerKey(skey) : skey;
  if (k.type !== SIG_COSIGNATURE_V1) throw badKey("not a cosignature/v1 (type 0x04) signer key");
  const seed = k.seed.slice();
  return {
    name: k.name,
    keyId: k.keyId,
    sign: (text) => cosign(now(), text, (m) => ed25519.sign(m, seed)),
  };
}

/** timestamp || sign(cosignatureMessage(timestamp, text)): the body of a cosignature/v1 signature. */
export function cosign(
  timestamp: number,
  text: Uint8Array,
  sign: (message: Uint8Array) => Uint8Array,
): Uint8Array {
  const out = new Uint8Array(72);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, Math.floor(timestamp / 2 ** 32));
  dv.setUint32(4, timestamp >>> 0);
  const sig = sign(cosignatureMessage(timestamp, text));
  if (sig.length !== 64) throw new RangeError("an Ed25519 signature is 64 bytes");
  out.set(sig, 8);
  return out;
}

/**
 * Sign a text with each signer and format the note. Existing signatures (e.g. the log's, when a
 * witness cosignature is added) are kept first, except those by one of these signers' keys,
 * which are replaced.
 */
export async function signNote(
  text: string,
  signers: readonly NoteSigner[],
  existing: readonly NoteSignature[] = [],
): Promise<string> {
  checkNoteText(text);
  const bytes = utf8(text);
  const sigs: NoteSignature[] = existing.filter(
    (e) => !signers.some((s) => s.name === e.name && s.keyId === e.keyId),
  );
  for (const s of signers) {
    if (!isValidKeyName(s.name)) throw badKey(`bad signer name ${JSON.stringify(s.name)}`);
    sigs.push({ name: s.name, keyId: s.keyId, signature: await s.sign(bytes) });
  }
  if (sigs.length === 0)
    throw new TlogError(TlogErrorCode.BadNote, "malformed note: a note needs at least one signature");
  return formatNote({ text, signatures: sigs });
}
