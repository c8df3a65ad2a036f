/**
 * One user's record as bytes, and the keys that place and seal it in the host's record tree
 * (docs/record-tree.md §1). The same bytes are a record inside a vault snapshot (state.ts) and the
 * plaintext of a record blob, so a record has one encoding everywhere and every member of a fleet
 * computes the same tree value for it (pinned in testdata/formats/vault-record.json).
 *
 *   user (string) || credential (16) || registration (bytes) || wrapped key (bytes)
 *   || guesses used (u32) || guess sequence (u32)
 *   || pending logins (list, ascending guess number: session id (16) || login state (string)
 *      || expires at (u64) || guess number (u32))
 *
 * Pending logins are kept in the order their guesses were counted (a guess always takes the next
 * number), so decoding accepts only ascending guess numbers, each at most the guess sequence: one
 * value, one encoding.
 *
 * A record blob is nonce (12) || AES-256-GCM of those bytes under the fleet's record seal key, bound
 * to the record's key. The seal key and the secret of the record keys are HKDF of the fleet's seed
 * (like its OPAQUE setup, opaque-setup.ts): every member of the fleet can open every host's blobs,
 * no host can, and a blob moved to another key does not open.
 */
import { BkvError, check, concatBytes, ErrorCode, fromHex, Reader, toHex, utf8, Writer } from "@bkv/wire";
import type { HsmCrypto } from "./platform.js";
import type { PendingLogin, VaultRecord } from "./state.js";

/** Bytes of a registration's credential id and of a login's session id. */
const CREDENTIAL_BYTES = 16;
const SESSION_BYTES = 16;
/** The longest OPAQUE server login state a record keeps (base64url text). */
export const MAX_LOGIN_STATE = 4096;

export function writeRecord(w: Writer, user: string, r: VaultRecord): Writer {
  w.string(user)
    .fixed(r.credential)
    .bytes(r.registration)
    .bytes(r.wrappedKey)
    .u32(r.guessesUsed)
    .u32(r.guessSeq);
  const pending = [...r.pending].sort((a, b) => a[1].seq - b[1].seq);
  return w.list(pending, (w, [id, p]) => {
    w.fixed(fromHex(id)).string(p.loginState).u64(p.expiresAt).u32(p.seq);
  });
}

export function readRecord(r: Reader): { user: string; record: VaultRecord } {
  const user = r.string("user");
  const credential = r.fixed(CREDENTIAL_BYTES, "credential");
  const registration = r.bytes("registration");
  const wrappedKey = r.bytes("wrapped key");
  const guessesUsed = r.u32("guesses used");
  const guessSeq = r.u32("guess number");
  const pending = new Map<string, PendingLogin>();
  const m = r.u32("pending count");
  let prevSeq = 0;
  for (let j = 0; j < m; j++) {
    const id = toHex(r.fixed(SESSION_BYTES, "session id"));
    check(!pending.has(id), "vault record: a pending login twice");
    const p = {
      loginState: r.string("login state", MAX_LOGIN_STATE),
      expiresAt: r.u64("expires at"),
      seq: r.u32("guess number"),
    };
    check(p.seq > prevSeq, "vault record: pending logins not in ascending guess order");
    check(p.seq <= guessSeq, "vault record: a pending login numbered past the guess sequence");
    prevSeq = p.seq;
    pending.set(id, p);
  }
  return { user, record: { credential, registration, wrappedKey, guessesUsed, guessSeq, pending } };
}

export function encodeRecord(user: string, r: VaultRecord): Uint8Array {
  return writeRecord(new Writer(), user, r).finish();
}

/** Strict: exactly one record, nothing after it. */
export function decodeRecord(b: Uint8Array): { user: string; record: VaultRecord } {
  const r = new Reader(b, "vault record");
  const out = readRecord(r);
  r.end();
  return out;
}

const TREE_SALT = utf8("bkv/record-tree/v1");
const BLOB_AAD = utf8("bkv record blob v1");
const NONCE_BYTES = 12;

/** The fleet's record-tree secrets, from its seed. */
export interface RecordSecrets {
  /** HMAC key of the record keys (record-tree.ts recordKey). */
  keySecret: Uint8Array;
  /** AES-256-GCM key of the record blobs. */
  sealKey: Uint8Array;
}

export function recordSecretsFromSeed(crypto: Pick<HsmCrypto, "hkdf">, seed: Uint8Array): RecordSecrets {
  if (seed.length !== 32) throw new Error("a fleet seed is 32 bytes");
  return {
    keySecret: crypto.hkdf(seed, TREE_SALT, utf8("record key secret"), 32),
    sealKey: crypto.hkdf(seed, TREE_SALT, utf8("record seal key"), 32),
  };
}

/** A record blob: the record's bytes sealed to its key. nonce: 12 fresh bytes from the platform. */
export async function sealRecord(
  crypto: Pick<HsmCrypto, "aeadSeal">,
  secrets: RecordSecrets,
  key: Uint8Array,
  plaintext: Uint8Array,
  nonce: Uint8Array,
): Promise<Uint8Array> {
  if (nonce.length !== NONCE_BYTES) throw new Error("a record blob's nonce is 12 bytes");
  const sealed = await crypto.aeadSeal(secrets.sealKey, nonce, plaintext, concatBytes(BLOB_AAD, key));
  return concatBytes(nonce, sealed);
}

/** The bytes of a record blob found at key; RECORD_PROOF if it was not sealed there by this fleet. */
export async function openRecord(
  crypto: Pick<HsmCrypto, "aeadOpen">,
  secrets: RecordSecrets,
  key: Uint8Array,
  blob: Uint8Array,
): Promise<Uint8Array> {
  if (blob.length < NONCE_BYTES + 16) throw new BkvError(ErrorCode.RecordProof, "record blob too short");
  try {
    return await crypto.aeadOpen(
      secrets.sealKey,
      blob.subarray(0, NONCE_BYTES),
      blob.subarray(NONCE_BYTES),
      concatBytes(BLOB_AAD, key),
    );
  } catch {
    throw new BkvError(ErrorCode.RecordProof, "record blob does not open under this fleet's key at this key");
  }
}
