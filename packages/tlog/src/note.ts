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
import { concatBytes, ed25519PointProblem, ed25519SignatureProblem, fromUtf8, utf8 } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { fromBase64, toBase64 } from "./encoding.js";
import { TlogError, TlogErrorCode } from "./errors.js";

/** Signature type: Ed25519 over the note text. */
export const SIG_ED25519 = 0x01;
/** Signature type: timestamped Ed25519 checkpoint cosignature (cosignature/v1). */
export const SIG_COSIGNATURE_V1 = 0x04;

/** Verifiers accept notes with at most this many signature lines (the spec asks for >= 16). */
export const MAX_NOTE_SIGNATURES = 100;
/** And at most this many bytes. */
export const MAX_NOTE_BYTES = 1 << 20;

const EM_DASH = "\u2014";
const SIG_PREFIX = `${EM_DASH} `;

export interface NoteSignature {
  readonly name: string;
  /** The uint32 key ID (first 4 bytes of the decoded signature, big-endian). */
  readonly keyId: number;
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array;
}

export interface Note {
  /** The signed text, with its final newline, without the blank separator line. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

export interface VerifierKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly publicKey: Uint8Array;
}

export interface SignerKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** The 32-byte Ed25519 seed (RFC 8032 private key). */
  readonly seed: Uint8Array;
}

/** Verifies one key's signatures over a note text. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** signature: the bytes after the key ID. */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** Signs note texts; sign returns the bytes after the key ID. May be asynchronous (WebCrypto, HSM). */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  sign(text: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export interface VerifiedSignature extends NoteSignature {
  readonly verifier: NoteVerifier;
  /** For cosignature/v1 signatures: the cosigning time, POSIX seconds. */
  readonly timestamp: number | undefined;
}

export interface OpenedNote {
  readonly text: string;
  /** Signatures by known keys, all verified, one per key (the first). */
  readonly verified: readonly VerifiedSignature[];
  /** Signatures by unknown keys, identical duplicates dropped. Not checked. */
  readonly unverified: readonly NoteSignature[];
}

function badNote(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadNote, `malformed note: ${message}`);
}

function badKey(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadKey, message);
}

const SPACE = /[\s\u0085]/u;

/** Key names: non-empty, no Unicode spaces, no "+". */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !SPACE.test(name) && !name.includes("+") && !/\p{Cs}/u.test(name);
}

/** Valid UTF-8 text with no ASCII control character other than newline. */
function checkNoteChars(s: string): void {
  if (/\p{Cs}/u.test(s)) throw badNote("not valid UTF-8 (lone surrogate)");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: this is the control-character check
  if (/[\u0000-\u0009\u000b-\u001f]/.test(s)) throw badNote("contains an ASCII control character");
}

function asText(msg: string | Uint8Array): string {
  if (typeof msg === "string") return msg;
  try {
    return fromUtf8(msg);
  } catch (e) {
    throw new TlogError(TlogErrorCode.BadNote, "malformed note: not valid UTF-8", { cause: e });
  }
}

function checkText(text: string): void {
  if (text.length === 0 || !text.endsWith("\n"))
    throw badNote("the text must be non-empty and end in a newline");
  checkNoteChars(text);
}

export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = sha256(concatBytes(utf8(name), new Uint8Array([0x0a, type]), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function u32be(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** One signature line's payload: name and base64(key ID || signature). */
function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIG_PREFIX)) throw badNote("a signature line must start with an em dash and a space");
  const rest = line.slice(SIG_PREFIX.length);
  const sp = rest.indexOf(" ");
  if (sp < 0) throw badNote("a signature line needs a key name and a signature");
  const name = rest.slice(0, sp);
  const b64 = rest.slice(sp + 1);
  if (!isValidKeyName(name)) throw badNote(`bad key name ${JSON.stringify(name)}`);
  const raw = fromBase64(b64);
  if (raw === undefined || raw.length < 5) throw badNote(`bad signature encoding for ${name}`);
  const id = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
  return { name, keyId: id, signature: raw.slice(4) };
}

/** Format one signature line, with its final newline. */
export function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name)) throw badNote(`bad key name ${JSON.stringify(sig.name)}`);
  return `${SIG_PREFIX}${sig.name} ${toBase64(concatBytes(u32be(sig.keyId), sig.signature))}\n`;
}

/**
 * Parse signature lines alone (each ending in a newline), as a tlog-witness response carries
 * them.
 */
export function parseSignatureLines(block: string): NoteSignature[] {
  checkNoteChars(block);
  if (block.length === 0 || !block.endsWith("\n")) throw badNote("signature lines must end in a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_NOTE_SIGNATURES) throw badNote(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  return lines.map(parseSignatureLine);
}

/** Split a signed note into text and signatures, checking only its syntax. */
export function parseNote(msg: string | Uint8Array): Note {
  if (msg.length > MAX_NOTE_BYTES) throw badNote(`larger than ${MAX_NOTE_BYTES} bytes`);
  const s = asText(msg);
  checkNoteChars(s);
  const split = s.lastIndexOf("\n\n");
  if (split < 0) throw badNote("no blank line before the signatures");
  const text = s.slice(0, split + 1);
  const sigs = s.slice(split + 2);
  if (sigs.length === 0 || !sigs.endsWith("\n")) throw badNote("the signatures must end in a newline");
  return { text, signatures: parseSignatureLines(sigs) };
}

export function formatNote(note: Note): string {
  checkText(note.text);
  return note.text + "\n" + note.signatures.map(formatSignatureLine).join("");
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
  return `${k.name}+${hex32(id)}+${toBase64(concatBytes(new Uint8Array([k.type]), k.publicKey))}`;
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
  return `PRIVATE+KEY+${k.name}+${hex32(id)}+${toBase64(concatBytes(new Uint8Array([k.type]), k.seed))}`;
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

const COSIGNATURE_HEADER = "cosignature/v1\n";

/** The message a cosignature/v1 signs: header, time line, then the checkpoint body. */
export function cosignatureMessage(timestamp: number, body: string | Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new RangeError(`bad timestamp ${timestamp}`);
  const b = typeof body === "string" ? utf8(body) : body;
  return concatBytes(utf8(`${COSIGNATURE_HEADER}time ${timestamp}\n`), b);
}

function readTimestamp(sig: Uint8Array): number | undefined {
  if (sig.length < 8) return undefined;
  const dv = new DataView(sig.buffer, sig.byteOffset, 8);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  // The spec allows up to 2^63 - 1; this library works in safe integers (2^53 - 1).
  if (hi >= 2 ** 21) return undefined;
  return hi * 2 ** 32 + lo;
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
  if (keyId(k.name, k.type, k.publicKey) !== k.keyId) throw badKey("the key ID does not match the key");
  const publicKey = k.publicKey.slice();
  if (k.type === SIG_ED25519) {
    return {
      name: k.name,
      keyId: k.keyId,
      type: k.type,
      verify: (text, sig) => verify(publicKey, text, sig),
    };
  }
  if (k.type === SIG_COSIGNATURE_V1) {
    return {
      name: k.name,
      keyId: k.keyId,
      type: k.type,
      verify: (text, sig) => {
        if (sig.length !== 72) return false;
        const ts = readTimestamp(sig);
        if (ts === undefined) return false;
        return verify(publicKey, cosignatureMessage(ts, text), sig.subarray(8));
      },
    };
  }
  throw badKey(`unsupported signature type 0x${k.type.toString(16)}`);
}

/** An Ed25519 (0x01) note signer from a signer key, signing with @noble/curves. */
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

function findVerifier(verifiers: readonly NoteVerifier[], sig: NoteSignature): NoteVerifier | undefined {
  let found: NoteVerifier | undefined;
  for (const v of verifiers) {
    if (v.name !== sig.name || v.keyId !== sig.keyId) continue;
    if (found !== undefined) {
      throw new TlogError(TlogErrorCode.AmbiguousKey, `ambiguous key ${sig.name}+${hex32(sig.keyId)}`);
    }
    found = v;
  }
  return found;
}

/**
 * Parse and verify a signed note against the known verifiers. Signatures by unknown keys are
 * ignored (kept in `unverified`); every signature by a known key must verify (else
 * TLOG_BAD_SIGNATURE); at least one must be present (else TLOG_UNVERIFIED).
 */
export function openNote(msg: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const note = parseNote(msg);
  const textBytes = utf8(note.text);
  const verified: VerifiedSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenUnknown = new Set<string>();
  for (const sig of note.signatures) {
    const v = findVerifier(verifiers, sig);
    if (v === undefined) {
      const line = formatSignatureLine(sig);
      if (!seenUnknown.has(line)) {
        seenUnknown.add(line);
        unverified.push(sig);
      }
      continue;
    }
    if (!v.verify(textBytes, sig.signature)) {
      throw new TlogError(
        TlogErrorCode.BadSignature,
        `invalid signature for key ${sig.name}+${hex32(sig.keyId)}`,
      );
    }
    if (verified.some((s) => s.verifier === v)) continue;
    verified.push({
      ...sig,
      verifier: v,
      timestamp: v.type === SIG_COSIGNATURE_V1 ? readTimestamp(sig.signature) : undefined,
    });
  }
  if (verified.length === 0)
    throw new TlogError(TlogErrorCode.Unverified, "note has no verifiable signatures");
  return { text: note.text, verified, unverified };
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
  checkText(text);
  const bytes = utf8(text);
  const sigs: NoteSignature[] = existing.filter(
    (e) => !signers.some((s) => s.name === e.name && s.keyId === e.keyId),
  );
  for (const s of signers) {
    if (!isValidKeyName(s.name)) throw badKey(`bad signer name ${JSON.stringify(s.name)}`);
    sigs.push({ name: s.name, keyId: s.keyId, signature: await s.sign(bytes) });
  }
  if (sigs.length === 0) throw badNote("a note needs at least one signature");
  return formatNote({ text, signatures: sigs });
}

/** The hex form of a key ID, as in verifier keys. */
export function keyIdHex(id: number): string {
  return hex32(id);
}
