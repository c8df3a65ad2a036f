/**
 * C2SP signed-note (c2sp.org/signed-note), the parts that need no cryptography of their own:
 * parsing and formatting notes and signature lines, the cosignature/v1 message (c2sp.org/
 * tlog-cosignature), key IDs and verifiers with SHA-256 and Ed25519 passed in, and opening a note
 * against known verifiers. @bkv/tlog (note.ts) adds keys, signers and its strict Ed25519; the HSM
 * core opens checkpoints with this same code and its platform's cryptography.
 *
 * Notes are attacker-controlled: parsing is strict, unknown keys are ignored, a known key's bad
 * signature rejects the whole note, and a note no known key signed is rejected.
 */
import { concatBytes, fromUtf8, utf8 } from "./bytes.js";
import { fromBase64, toBase64 } from "./tlog-encoding.js";
import { TlogError, TlogErrorCode } from "./tlog-errors.js";
import type { TreeHash } from "./tlog-merkle.js";

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

/** Verifies one key's signatures over a note text. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** signature: the bytes after the key ID. */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** Signs note texts; sign returns the bytes after the key ID. May be asynchronous (WebCrypto, HSM). */
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

export function badKey(message: string): TlogError {
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

export function checkNoteText(text: string): void {
  if (text.length === 0 || !text.endsWith("\n"))
    throw badNote("the text must be non-empty and end in a newline");
  checkNoteChars(text);
}
export function keyIdHex(n: number): string {
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
  checkNoteText(note.text);
  return note.text + "\n" + note.signatures.map(formatSignatureLine).join("");
}

const COSIGNATURE_HEADER = "cosignature/v1\n";

/** The message a cosignature/v1 signs: header, time line, then the checkpoint body. */
export function cosignatureMessage(timestamp: number, body: string | Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new RangeError(`bad timestamp ${timestamp}`);
  const b = typeof body === "string" ? utf8(body) : body;
  return concatBytes(utf8(`${COSIGNATURE_HEADER}time ${timestamp}\n`), b);
}

/** The time of a cosignature/v1 signature (its first 8 bytes), or undefined past 2^53 - 1. */
export function cosignatureTimestamp(sig: Uint8Array): number | undefined {
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
function findVerifier(verifiers: readonly NoteVerifier[], sig: NoteSignature): NoteVerifier | undefined {
  let found: NoteVerifier | undefined;
  for (const v of verifiers) {
    if (v.name !== sig.name || v.keyId !== sig.keyId) continue;
    if (found !== undefined) {
      throw new TlogError(TlogErrorCode.AmbiguousKey, `ambiguous key ${sig.name}+${keyIdHex(sig.keyId)}`);
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
        `invalid signature for key ${sig.name}+${keyIdHex(sig.keyId)}`,
      );
    }
    if (verified.some((s) => s.verifier === v)) continue;
    verified.push({
      ...sig,
      verifier: v,
      timestamp: v.type === SIG_COSIGNATURE_V1 ? cosignatureTimestamp(sig.signature) : undefined,
    });
  }
  if (verified.length === 0)
    throw new TlogError(TlogErrorCode.Unverified, "note has no verifiable signatures");
  return { text: note.text, verified, unverified };
}

/** key ID = SHA-256(name || 0x0A || type || public key)[:4], big-endian; the hash passed in. */
export function keyIdWith(hash: TreeHash, name: string, type: number, publicKey: Uint8Array): number {
  const h = hash(concatBytes(utf8(name), new Uint8Array([0x0a, type]), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

/** Checks one Ed25519 signature: the caller's strict verifier. */
export type Ed25519Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

/**
 * A verifier for an Ed25519 (0x01) or cosignature/v1 (0x04) key, with SHA-256 (for the key ID)
 * and the Ed25519 check passed in.
 */
export function noteVerifierWith(hash: TreeHash, k: VerifierKey, verify: Ed25519Verify): NoteVerifier {
  if (keyIdWith(hash, k.name, k.type, k.publicKey) !== k.keyId)
    throw badKey("the key ID does not match the key");
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
        const ts = cosignatureTimestamp(sig);
        if (ts === undefined) return false;
        return verify(publicKey, cosignatureMessage(ts, text), sig.subarray(8));
      },
    };
  }
  throw badKey(`unsupported signature type 0x${k.type.toString(16)}`);
}
