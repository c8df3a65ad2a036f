/**
 * The crypto of a passkey wrap, apart from WebAuthn so it runs (and is tested) anywhere WebCrypto
 * does. The authenticator's PRF (WebAuthn `prf` extension, CTAP2 hmac-secret) is evaluated at
 * `passkeyPrfInput(salt)`; its 32-byte output never leaves the device:
 *
 *   KEK = HKDF-SHA256(ikm = PRF output, salt, info = "bkv passkey kek v1" 0x00 user 0x00 credentialId)
 *   wrappedKey = nonce(12) || AES-256-GCM_KEK(K, aad = "bkv passkey wrap v1" 0x00 version
 *                || u32(len user) || user || credentialId)
 *
 * The wrap is safe to store anywhere: without the authenticator (and its user verification) the
 * PRF output, hence the KEK, cannot be computed.
 */
import { BkvError, concatBytes, ErrorCode, fromBase64Url, toBase64Url, utf8 } from "@bkv/wire";
import { BACKUP_KEY_SIZE } from "../backup/key.js";
import { bufferSource, subtle } from "../backup/webcrypto.js";

export const PASSKEY_WRAP_VERSION = 1;
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
  version: 1;
  /** The WebAuthn credential id, base64url. */
  credentialId: string;
  /** base64url of 32 random bytes, one per credential: the PRF input is derived from it. */
  salt: string;
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

function wrapAad(user: string, credentialId: Uint8Array): Uint8Array {
  const u = checkUser(user);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, u.length);
  return concatBytes(AAD_LABEL, Uint8Array.of(0, PASSKEY_WRAP_VERSION), len, u, credentialId);
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
  const key = await kekKey(prfOutput, salt, user, id, "encrypt");
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: bufferSource(wrapAad(user, id)) },
    key,
    bufferSource(backupKey),
  );
  const wrap: PasskeyWrap = {
    version: PASSKEY_WRAP_VERSION,
    credentialId: toBase64Url(id),
    salt: toBase64Url(salt),
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
  wrappedKey: Uint8Array;
} {
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
  const wrappedKey = fromBase64Url(wrap.wrappedKey);
  checkLength(wrappedKey, WRAPPED_KEY_SIZE, "a passkey wrappedKey");
  return { credentialId, salt, wrappedKey };
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
    wrappedKey: w.wrappedKey,
    user: w.user,
    createdAt: w.createdAt,
  };
  if (w.label !== undefined) out.label = w.label;
  return out;
}

/**
 * Open a wrap with the PRF output of its credential, for `user` (the caller's user, not the one
 * written in the wrap). WRONG_KEY if the PRF output, user, credential id, salt or bytes differ from
 * those it was made with.
 */
export async function unwrapWithPrf(
  prfOutput: Uint8Array,
  wrap: PasskeyWrap,
  user: string,
): Promise<Uint8Array> {
  const { credentialId, salt, wrappedKey } = decodePasskeyWrap(wrap);
  const key = await kekKey(prfOutput, salt, user, credentialId, "decrypt");
  try {
    const pt = await subtle().decrypt(
      {
        name: "AES-GCM",
        iv: bufferSource(wrappedKey.subarray(0, NONCE_SIZE)),
        additionalData: bufferSource(wrapAad(user, credentialId)),
      },
      key,
      bufferSource(wrappedKey.subarray(NONCE_SIZE)),
    );
    return new Uint8Array(pt);
  } catch (e) {
    throw new BkvError(ErrorCode.WrongKey, "the passkey wrap does not open with this passkey and user", {
      cause: e,
    });
  }
}
