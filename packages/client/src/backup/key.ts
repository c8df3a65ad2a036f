/**
 * The backup key K: 32 random bytes that the user holds. Its written form is 64 lowercase hex digits
 * in 16 groups of 4 joined by '-', e.g. `3f2a-09c1-...`; the parser also takes plain hex, in any
 * case, with any whitespace. The key id (first 8 bytes of HKDF-SHA256(K, "", "bkv key id v1")) goes
 * into every backup header so a wrong key is reported as such instead of as corruption.
 */
import { BkvError, ErrorCode } from "@bkv/wire";
import { hkdfSha256 } from "./webcrypto.js";

export const BACKUP_KEY_SIZE = 32;
export const KEY_ID_SIZE = 8;
const KEY_ID_INFO = "bkv key id v1";
const HEX_DIGITS = BACKUP_KEY_SIZE * 2;
const GROUP = 4;

/** A fresh backup key from the platform's CSPRNG. */
export function generateBackupKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(BACKUP_KEY_SIZE));
}

/** Throws INVALID unless `key` is a 32-byte backup key. */
export function assertBackupKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== BACKUP_KEY_SIZE) {
    throw new BkvError(ErrorCode.Invalid, `a backup key is ${BACKUP_KEY_SIZE} bytes`);
  }
}

/** The written form: 16 groups of 4 lowercase hex digits separated by '-'. */
export function formatBackupKey(key: Uint8Array): string {
  assertBackupKey(key);
  let hex = "";
  for (const b of key) hex += b.toString(16).padStart(2, "0");
  const groups: string[] = [];
  for (let i = 0; i < hex.length; i += GROUP) groups.push(hex.slice(i, i + GROUP));
  return groups.join("-");
}

const GROUPED = /^[0-9a-f]{4}(?:-[0-9a-f]{4}){15}$/;
const PLAIN = /^[0-9a-f]{64}$/;

/**
 * Reads a key in the written form or as 64 plain hex digits; case and whitespace do not matter.
 * Errors (MALFORMED) say what is wrong without repeating the text, which may be most of a key.
 */
export function parseBackupKey(text: string): Uint8Array {
  const s = text.replace(/\s+/g, "").toLowerCase();
  if (!GROUPED.test(s) && !PLAIN.test(s)) {
    const bad = s.search(/[^0-9a-f-]/);
    const digits = s.replace(/-/g, "").length;
    let why: string;
    if (s.length === 0) why = "it is empty";
    else if (bad >= 0) why = `character ${bad + 1} is not a hex digit or '-'`;
    else if (digits !== HEX_DIGITS) why = `it has ${digits} hex digits`;
    else why = "its '-' separators are not between groups of 4";
    throw new BkvError(
      ErrorCode.Malformed,
      `not a backup key: ${why}; expected ${HEX_DIGITS} hex digits, written as 16 groups of 4 separated by '-'`,
    );
  }
  const hex = s.replace(/-/g, "");
  const key = new Uint8Array(BACKUP_KEY_SIZE);
  for (let i = 0; i < BACKUP_KEY_SIZE; i++) key[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return key;
}

/** The 8-byte key id stored in backup headers. It reveals nothing useful about K. */
export async function backupKeyId(key: Uint8Array): Promise<Uint8Array> {
  assertBackupKey(key);
  return hkdfSha256(key, new Uint8Array(0), KEY_ID_INFO, KEY_ID_SIZE);
}
