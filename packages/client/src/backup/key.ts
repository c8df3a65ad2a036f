/**
 * The backup key K: 32 random bytes that the user holds. Its written form is 64 lowercase hex digits
 * in 16 groups of 4 and a 17th check group (CRC-16/CCITT of K, which catches every mistyped digit
 * and every two swapped neighbours), joined by '-', e.g. `3f2a-09c1-...-7d0e`; the parser also
 * takes plain hex, in any case, with any whitespace. Keys written before the check group (16 groups,
 * or 64 plain digits) still read as they are, unchecked; written out again (`bkv vault recover`,
 * `bkv key new`) they get it. The key id (first 8 bytes of HKDF-SHA256(K, "", "bkv key id v1")) goes
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

/** CRC-16/CCITT-FALSE (polynomial 0x1021, start 0xffff): the key's check group. */
function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

const checkGroup = (key: Uint8Array) => crc16(key).toString(16).padStart(GROUP, "0");

/** The written form: 16 groups of 4 lowercase hex digits and the check group, separated by '-'. */
export function formatBackupKey(key: Uint8Array): string {
  assertBackupKey(key);
  let hex = "";
  for (const b of key) hex += b.toString(16).padStart(2, "0");
  hex += checkGroup(key);
  const groups: string[] = [];
  for (let i = 0; i < hex.length; i += GROUP) groups.push(hex.slice(i, i + GROUP));
  return groups.join("-");
}

const GROUPED = /^[0-9a-f]{4}(?:-[0-9a-f]{4}){15}(?:-[0-9a-f]{4})?$/;
const PLAIN = /^(?:[0-9a-f]{64}|[0-9a-f]{68})$/;
const CHECKED_DIGITS = HEX_DIGITS + GROUP;

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
    else if (digits !== HEX_DIGITS && digits !== CHECKED_DIGITS) why = `it has ${digits} hex digits`;
    else why = "its '-' separators are not between groups of 4";
    throw new BkvError(
      ErrorCode.Malformed,
      `not a backup key: ${why}; expected ${CHECKED_DIGITS} hex digits, written as 17 groups of 4 separated by '-' (a key written before the check group has 64 hex digits in 16 groups)`,
    );
  }
  const hex = s.replace(/-/g, "");
  const key = new Uint8Array(BACKUP_KEY_SIZE);
  for (let i = 0; i < BACKUP_KEY_SIZE; i++) key[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  if (hex.length === CHECKED_DIGITS && hex.slice(HEX_DIGITS) !== checkGroup(key)) {
    key.fill(0);
    throw new BkvError(
      ErrorCode.Malformed,
      "not a backup key: its last group (the check group) does not match the rest: a digit is mistyped or two are swapped; check each group against the written key",
    );
  }
  return key;
}

/** The 8-byte key id stored in backup headers. It reveals nothing useful about K. */
export async function backupKeyId(key: Uint8Array): Promise<Uint8Array> {
  assertBackupKey(key);
  return hkdfSha256(key, new Uint8Array(0), KEY_ID_INFO, KEY_ID_SIZE);
}
