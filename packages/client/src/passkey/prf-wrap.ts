/**
 * The crypto of a passkey wrap, apart from WebAuthn so it runs (and is tested) anywhere WebCrypto
 * does. The authenticator's PRF (WebAuthn `prf` extension, CTAP2 hmac-secret) is evaluated at
 * `passkeyPrfInput(salt)`; its 32-byte output never leaves the device:
 *
 *   KEK = HKDF-SHA256(ikm = PRF output, salt, info = "bkv passkey kek v1" 0x00 user 0x00 credentialId)
 *   wrappedKey = nonce(12) || AES-256-GCM_KEK(K, aad = "bkv passkey wrap v1" 0x00 version(2)
 *                || u32(len user) || user || keyId(8) || credentialId)
 *
 * The wrap is safe to store anywhere: without the authenticator (and its user verification) the
 * PRF output, hence the KEK, cannot be computed. It names the key it wraps (keyId, K's id as in
 * every backup header, bound by the associated data), so a restore checks that a wrap holds the K
 * of the backup it restores: storage that serves a wrap made before K was rotated is caught
 * (WRONG_KEY) before the passkey is even used. Version 1 wraps named no key; they are refused.
 */
import { BkvError, concatBytes, ErrorCode, fromBase64Url, toBase64Url, utf8 } from "@bkv/wire";
import { BACKUP_KEY_SIZE, backupKeyId, KEY_ID_SIZE } from "../backup/key.js";
import { bufferSource, subtle } from "../backup/webcrypto.js";

export const PASSKEY_WRAP_VERSION = 2;
/** Bytes of the per-credential salt. */
export const PASSKEY_SALT_SIZE = 32;
/** Bytes of a PRF output (WebAuthn PRF results are HMAC-SHA256 outputs). */
export const PASSKEY_PRF_OUTPUT_SIZE = 32;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const WRAPPED_KEY_SIZE = NONCE_SIZE + BACKUP_KEY_SIZE + TAG_SIZE;

const PRF_LABEL = utf8("bkv passkey prf v1");
const KEK_LABEL = utf8("bkv passkey kek v1");
const AAD_LABEL = utf8("bkv passkey wrap v1");

/** What an app stores to recover K with a passkey: no secret in it. */
export interface PasskeyWrap {
  version: 2;
  /** The WebAuthn credential id, base64url. */
  credentialId: string;
  /** base64url of 32 random bytes, one per credential: the PRF input is derived from it. */
  salt: string;
  /** base64url of the wrapped K's key id (8 bytes, as in the header of every backup made with K). */
  keyId: string;
  /** base64url of nonce(12) || AES-256-GCM(K) (48 bytes). */
  wrappedKey: string;
  user: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  label?: string;
}

/** A credential id as raw bytes or base64url text. */
export type CredentialIdLike = Uint8Array | string;

function credentialIdBytes(id: CredentialIdLike): Uint8Array {
  const b = typeof id === "string" ? fromBase64Url(id) : id;
  if (b.length === 0 || b.length > 1023) {
    throw new BkvError(ErrorCode.Malformed, "a WebAuthn credential id is 1 to 1023 bytes");
  }
  return b;
}

function checkUser(user: string): Uint8Array {
  if (typeof user !== "string" || user.length === 0 || user.includes("\0")) {
    throw new BkvError(ErrorCode.Invalid, "the user id must be a non-empty string without NUL characters");
  }
  return utf8(user);
}

function checkLength(b: Uint8Array, n: number, what: string): void {
  if (b.length !== n) throw new BkvError(ErrorCode.Malformed, `${what} must be ${n} bytes`);
}

/** A fresh random salt for a new credential. */
export function newPasskeySalt(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(PASSKEY_SALT_SIZE));
}

/** The PRF input ("first") for a credential's salt: SHA-256("bkv passkey prf v1" || salt). */
export async function passkeyPrfInput(salt: Uint8Array): Promise<Uint8Array> {
  checkLength(salt, PASSKEY_SALT_SIZE, "a passkey salt");
  return new Uint8Array(await subtle().digest("SHA-256", bufferSource(concatBytes(PRF_LABEL, salt))));
}

/** KEK = HKDF-SHA256(PRF output, salt, "bkv passkey kek v1" 0 user 0 credentialId), 32 bytes. */
export async function derivePasskeyKek(
  prfOutput: Uint8Array,
  salt: Uint8Array,
  user: string,
  credentialId: CredentialIdLike,
): Promise<Uint8Array> {
  checkLength(prfOutput, PASSKEY_PRF_OUTPUT_SIZE, "a PRF output");
  checkLength(salt, PASSKEY_SALT_SIZE, "a passkey salt");
  const info = concatBytes(
    KEK_LABEL,
    Uint8Array.of(0),
    checkUser(user),
    Uint8Array.of(0),
    credentialIdBytes(credentialId),
  );
  const s = subtle();
  const ikm = await s.importKey("raw", bufferSource(prfOutput), "HKDF", false, ["deriveBits"]);
  const bits = await s.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: bufferSource(salt), info: bufferSource(info) },
    ikm,
    256,
  );
  return new Uint8Array(bits);
}

function wrapAad(user: string, keyId: Uint8Array, credentialId: Uint8Array): Uint8Array {
  const u = checkUser(user);
  checkLength(keyId, KEY_ID_SIZE, "a key id");
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, u.length);
  return concatBytes(AAD_LABEL, Uint8Array.of(0, PASSKEY_WRAP_VERSION), len, u, keyId, credentialId);
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Derive the KEK as a non-extractable AES-GCM key; the raw KEK bytes are zeroed. */
async function kekKey(
  prfOutput: Uint8Array,
  salt: Uint8Array,
  user: string,
  credentialId: Uint8Array,
  usage: KeyUsage,
): Promise<CryptoKey> {
  const raw = await derivePasskeyKek(prfOutput, salt, user, credentialId);
  try {
    return await subtle().importKey("raw", bufferSource(raw), "AES-GCM", false, [usage]);
  } finally {
    raw.fill(0);
  }
}

/** Seal K for one credential. The caller zeroes prfOutput when it is done with it. */
export async function wrapWithPrf(
  prfOutput: Uint8Array,
  salt: Uint8Array,
  user: string,
  credentialId: CredentialIdLike,
  backupKey: Uint8Array,
  options: { label?: string; createdAt?: number } = {},
): Promise<PasskeyWrap> {
  if (backupKey.length !== BACKUP_KEY_SIZE) {
    throw new BkvError(ErrorCode.Invalid, `the backup key must be ${BACKUP_KEY_SIZE} bytes`);
  }
  const id = credentialIdBytes(credentialId);
  const keyId = await backupKeyId(backupKey);
  const key = await kekKey(prfOutput, salt, user, id, "encrypt");
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: bufferSource(wrapAad(user, keyId, id)) },
    key,
    bufferSource(backupKey),
  );
  const wrap: PasskeyWrap = {
    version: PASSKEY_WRAP_VERSION,
    credentialId: toBase64Url(id),
    salt: toBase64Url(salt),
    keyId: toBase64Url(keyId),
    wrappedKey: toBase64Url(concatBytes(nonce, new Uint8Array(ct))),
    user,
    createdAt: options.createdAt ?? Date.now(),
  };
  if (options.label !== undefined) wrap.label = options.label;
  return wrap;
}

/** The decoded bytes of a wrap, after checking its shape (MALFORMED otherwise). */
export function decodePasskeyWrap(wrap: PasskeyWrap): {
  credentialId: Uint8Array;
  salt: Uint8Array;
  keyId: Uint8Array;
  wrappedKey: Uint8Array;
} {
  if (typeof wrap === "object" && wrap !== null && (wrap as { version: unknown }).version === 1) {
    throw new BkvError(
      ErrorCode.Invalid,
      "a version 1 passkey wrap names no key, so a restore cannot check that it holds the backup's key; it is no longer accepted: add the passkey again",
    );
  }
  if (typeof wrap !== "object" || wrap === null || wrap.version !== PASSKEY_WRAP_VERSION) {
    throw new BkvError(ErrorCode.Malformed, "not a passkey wrap of a known version");
  }
  if (typeof wrap.credentialId !== "string" || typeof wrap.salt !== "string") {
    throw new BkvError(ErrorCode.Malformed, "a passkey wrap needs a credentialId and a salt");
  }
  if (typeof wrap.wrappedKey !== "string" || typeof wrap.user !== "string") {
    throw new BkvError(ErrorCode.Malformed, "a passkey wrap needs a wrappedKey and a user");
  }
  const credentialId = credentialIdBytes(wrap.credentialId);
  const salt = fromBase64Url(wrap.salt);
  checkLength(salt, PASSKEY_SALT_SIZE, "a passkey salt");
  if (typeof wrap.keyId !== "string") throw new BkvError(ErrorCode.Malformed, "a passkey wrap needs a keyId");
  const keyId = fromBase64Url(wrap.keyId);
  checkLength(keyId, KEY_ID_SIZE, "a passkey wrap's keyId");
  const wrappedKey = fromBase64Url(wrap.wrappedKey);
  checkLength(wrappedKey, WRAPPED_KEY_SIZE, "a passkey wrappedKey");
  return { credentialId, salt, keyId, wrappedKey };
}

/** Check that a value read from storage is a well-formed PasskeyWrap (MALFORMED otherwise). */
export function parsePasskeyWrap(value: unknown): PasskeyWrap {
  const w = value as PasskeyWrap;
  decodePasskeyWrap(w);
  if (typeof w.createdAt !== "number" || !Number.isFinite(w.createdAt)) {
    throw new BkvError(ErrorCode.Malformed, "a passkey wrap needs a createdAt time");
  }
  if (w.label !== undefined && typeof w.label !== "string") {
    throw new BkvError(ErrorCode.Malformed, "a passkey wrap's label must be a string");
  }
  const out: PasskeyWrap = {
    version: PASSKEY_WRAP_VERSION,
    credentialId: w.credentialId,
    salt: w.salt,
    keyId: w.keyId,
    wrappedKey: w.wrappedKey,
    user: w.user,
    createdAt: w.createdAt,
  };
  if (w.label !== undefined) out.label = w.label;
  return out;
}

/**
 * WRONG_KEY unless the wrap names the key id `keyId` (from the header of the backup being
 * restored): a wrap of another K, e.g. one made before K was rotated and served by storage since.
 */
export function checkWrapKeyId(wrap: PasskeyWrap, keyId: Uint8Array): void {
  checkLength(keyId, KEY_ID_SIZE, "the backup's key id");
  const named = decodePasskeyWrap(wrap).keyId;
  if (hex(named) !== hex(keyId)) {
    throw new BkvError(
      ErrorCode.WrongKey,
      `the passkey wrap holds another backup key (key id ${hex(named)}) than the backup being restored (key id ${hex(keyId)}): a wrap made before the key was rotated`,
    );
  }
}

/**
 * Open a wrap with the PRF output of its credential, for `user` (the caller's user, not the one
 * written in the wrap), expecting the K whose key id is `keyId` (the header of the backup being
 * restored). WRONG_KEY if the wrap names another key, or if the PRF output, user, credential id,
 * salt, key id or bytes differ from those it was made with.
 */
export async function unwrapWithPrf(
  prfOutput: Uint8Array,
  wrap: PasskeyWrap,
  user: string,
  keyId: Uint8Array,
): Promise<Uint8Array> {
  checkWrapKeyId(wrap, keyId);
  const { credentialId, salt, wrappedKey } = decodePasskeyWrap(wrap);
  const key = await kekKey(prfOutput, salt, user, credentialId, "decrypt");
  let k: Uint8Array;
  try {
    const pt = await subtle().decrypt(
      {
        name: "AES-GCM",
        iv: bufferSource(wrappedKey.subarray(0, NONCE_SIZE)),
        additionalData: bufferSource(wrapAad(user, keyId, credentialId)),
      },
      key,
      bufferSource(wrappedKey.subarray(NONCE_SIZE)),
    );
    k = new Uint8Array(pt);
  } catch (e) {
    throw new BkvError(ErrorCode.WrongKey, "the passkey wrap does not open with this passkey and user", {
      cause: e,
    });
  }
  // The associated data binds the key id; its own check costs one HKDF and catches a wrong wrapper.
  if (hex(await backupKeyId(k)) !== hex(keyId)) {
    k.fill(0);
    throw new BkvError(ErrorCode.WrongKey, "the passkey wrap holds a key whose id is not the one it names");
  }
  return k;
}
