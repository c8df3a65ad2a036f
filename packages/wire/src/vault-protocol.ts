/**
 * The vault protocol between the client SDK and the HSM core. The client seals a VaultRequest with
 * HPKE to the vault key inside a RequestEnvelope; the HSM answers with a VaultResponse sealed under a
 * key exported from the same HPKE context (so only that client can read it, and it is bound to that
 * request). The host in between sees only the envelope header (the user id, for authorization).
 */
import { utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { BkvError, check, ErrorCode } from "./errors.js";
import { OpaqueSize } from "./opaque-sizes.js";

export const PROTOCOL_VERSION = 1;
const REQUEST_MAGIC = utf8("BKVQ");
const RESPONSE_MAGIC = utf8("BKVR");

export const REQUEST_ID_BYTES = 16;
export const SESSION_ID_BYTES = 16;
/**
 * A registration ticket: register-start hands one out, and register-finish must present it. It is
 * good once, only while nothing else happened to the user's record since it was handed out, so a
 * register-finish the operator held back cannot replace a record later (and give its guesses back).
 */
export const TICKET_BYTES = 16;
/** HPKE info string for requests; binds the ciphertext to this protocol. */
export const HPKE_INFO = utf8("bkv vault request v1");
/** HPKE exporter context for the response key. */
export const RESPONSE_EXPORT_CONTEXT = utf8("bkv vault response v1");
/** X25519 encapsulated key size. */
export const HPKE_ENC_BYTES = 32;
export const MAX_WRAPPED_KEY_BYTES = 256;

/** User ids come from token subjects: 1 to 128 printable characters, no spaces or controls. */
export function validateUserId(user: string): string {
  if (typeof user !== "string" || user.length < 1 || user.length > 128 || !/^[\x21-\x7e]+$/.test(user)) {
    throw new BkvError(
      ErrorCode.Invalid,
      "user id must be 1 to 128 printable ASCII characters without spaces",
    );
  }
  return user;
}

// ---------------------------------------------------------------------------------------------
// Envelope: magic | version | user id | enc | ciphertext. The header (everything before enc) is the
// HPKE associated data, so a host that changes the user id breaks decryption.

export interface RequestEnvelope {
  user: string;
  enc: Uint8Array;
  ciphertext: Uint8Array;
}

export function envelopeHeader(user: string): Uint8Array {
  return new Writer().fixed(REQUEST_MAGIC).u8(PROTOCOL_VERSION).string(validateUserId(user)).finish();
}

export function encodeRequestEnvelope(e: RequestEnvelope): Uint8Array {
  return new Writer().fixed(envelopeHeader(e.user)).fixed(e.enc).bytes(e.ciphertext).finish();
}

export function decodeRequestEnvelope(b: Uint8Array): RequestEnvelope {
  const r = new Reader(b, "vault request envelope");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === REQUEST_MAGIC[i]),
    "vault request envelope: wrong magic",
  );
  const version = r.u8("version");
  check(version === PROTOCOL_VERSION, `vault request envelope: unsupported version ${version}`);
  const user = r.string("user id", 128);
  try {
    validateUserId(user);
  } catch {
    check(false, "vault request envelope: invalid user id");
  }
  const enc = r.fixed(HPKE_ENC_BYTES, "HPKE encapsulated key");
  const ciphertext = r.bytes("ciphertext", 4096);
  r.end();
  return { user, enc, ciphertext };
}

/** The response is AES-256-GCM under the key exported from the request's HPKE context. */
export interface ResponseEnvelope {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

export function encodeResponseEnvelope(e: ResponseEnvelope): Uint8Array {
  return new Writer().fixed(RESPONSE_MAGIC).u8(PROTOCOL_VERSION).fixed(e.nonce).bytes(e.ciphertext).finish();
}

export function decodeResponseEnvelope(b: Uint8Array): ResponseEnvelope {
  const r = new Reader(b, "vault response envelope");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === RESPONSE_MAGIC[i]),
    "vault response envelope: wrong magic",
  );
  const version = r.u8("version");
  check(version === PROTOCOL_VERSION, `vault response envelope: unsupported version ${version}`);
  const nonce = r.fixed(12, "nonce");
  const ciphertext = r.bytes("ciphertext", 4096);
  r.end();
  return { nonce, ciphertext };
}

// ---------------------------------------------------------------------------------------------
// Requests (the HPKE plaintext).

export const OpCode = {
  RegisterStart: 1,
  RegisterFinish: 2,
  RecoverStart: 3,
  RecoverFinish: 4,
} as const;

/** What a successful login is for. */
export const FinishAction = { Recover: 0, Delete: 1 } as const;
export type FinishAction = (typeof FinishAction)[keyof typeof FinishAction];

export type VaultOp =
  | { op: "register-start"; registrationRequest: Uint8Array }
  /** replace: false refuses (RECORD_EXISTS) when the user already has a record. */
  | {
      op: "register-finish";
      ticket: Uint8Array;
      registrationRecord: Uint8Array;
      wrappedKey: Uint8Array;
      replace: boolean;
    }
  | { op: "recover-start"; ke1: Uint8Array }
  /** ke3 is empty when the client found the PIN wrong and only reports the failure. */
  | { op: "recover-finish"; sessionId: Uint8Array; ke3: Uint8Array; action: FinishAction };

export interface VaultRequest {
  /** Random, unique per request: the HSM refuses a request id it has seen. */
  requestId: Uint8Array;
  /** Client's clock in ms since the epoch; the HSM accepts it only within its window. */
  issuedAt: number;
  body: VaultOp;
}

export function encodeVaultRequest(req: VaultRequest): Uint8Array {
  check(req.requestId.length === REQUEST_ID_BYTES, "request id must be 16 bytes");
  const w = new Writer().fixed(req.requestId).u64(req.issuedAt);
  const b = req.body;
  switch (b.op) {
    case "register-start":
      w.u8(OpCode.RegisterStart).bytes(b.registrationRequest);
      break;
    case "register-finish":
      check(b.ticket.length === TICKET_BYTES, "a registration ticket is 16 bytes");
      w.u8(OpCode.RegisterFinish)
        .fixed(b.ticket)
        .bytes(b.registrationRecord)
        .bytes(b.wrappedKey)
        .u8(b.replace ? 1 : 0);
      break;
    case "recover-start":
      w.u8(OpCode.RecoverStart).bytes(b.ke1);
      break;
    case "recover-finish":
      w.u8(OpCode.RecoverFinish).fixed(b.sessionId).bytes(b.ke3).u8(b.action);
      break;
  }
  return w.finish();
}

function replaceFlag(v: number): boolean {
  check(v === 0 || v === 1, `vault request: the replace flag is ${v}, not 0 or 1`);
  return v === 1;
}

export function decodeVaultRequest(bytes: Uint8Array): VaultRequest {
  const r = new Reader(bytes, "vault request");
  const requestId = r.fixed(REQUEST_ID_BYTES, "request id");
  const issuedAt = r.u64("issued-at time");
  const op = r.u8("operation");
  let body: VaultOp;
  switch (op) {
    case OpCode.RegisterStart:
      body = {
        op: "register-start",
        registrationRequest: r.sized("registration request", OpaqueSize.registrationRequest),
      };
      break;
    case OpCode.RegisterFinish:
      body = {
        op: "register-finish",
        ticket: r.fixed(TICKET_BYTES, "registration ticket"),
        registrationRecord: r.sized("registration record", OpaqueSize.registrationRecord),
        wrappedKey: r.bytes("wrapped key", MAX_WRAPPED_KEY_BYTES),
        replace: replaceFlag(r.u8("replace")),
      };
      check(body.wrappedKey.length > 0, "vault request: empty wrapped key");
      break;
    case OpCode.RecoverStart:
      body = { op: "recover-start", ke1: r.sized("KE1", OpaqueSize.ke1) };
      break;
    case OpCode.RecoverFinish: {
      const sessionId = r.fixed(SESSION_ID_BYTES, "session id");
      const ke3 = r.bytes("KE3", OpaqueSize.ke3);
      check(
        ke3.length === 0 || ke3.length === OpaqueSize.ke3,
        `vault request: KE3 must be 0 or ${OpaqueSize.ke3} bytes`,
      );
      const action = r.u8("action");
      check(
        action === FinishAction.Recover || action === FinishAction.Delete,
        `vault request: unknown action ${action}`,
      );
      body = { op: "recover-finish", sessionId, ke3, action: action as FinishAction };
      break;
    }
    default:
      check(false, `vault request: unknown operation ${op}`);
  }
  r.end();
  return { requestId, issuedAt, body };
}

// ---------------------------------------------------------------------------------------------
// Responses (the plaintext sealed back to the client).

export type VaultResult =
  | { ok: "register-start"; registrationResponse: Uint8Array; ticket: Uint8Array }
  | { ok: "register-finish"; guessesAllowed: number }
  | { ok: "recover-start"; sessionId: Uint8Array; ke2: Uint8Array; guessesRemaining: number }
  /** wrappedKey is empty after a delete. */
  | { ok: "recover-finish"; wrappedKey: Uint8Array; guessesAllowed: number }
  | { error: VaultErrorCode; guessesRemaining: number; message: string };

/** Errors the HSM reports inside the sealed response. */
export const VaultErrorCodes = [
  ErrorCode.NoRecord,
  ErrorCode.WrongPin,
  ErrorCode.NoSession,
  ErrorCode.Replay,
  ErrorCode.Expired,
  ErrorCode.Invalid,
  ErrorCode.RecordExists,
] as const;
export type VaultErrorCode = (typeof VaultErrorCodes)[number];

const RESULT_TAG = {
  "register-start": 1,
  "register-finish": 2,
  "recover-start": 3,
  "recover-finish": 4,
  error: 255,
} as const;

export function encodeVaultResult(res: VaultResult): Uint8Array {
  const w = new Writer();
  if ("error" in res) {
    w.u8(RESULT_TAG.error)
      .u8(VaultErrorCodes.indexOf(res.error))
      .u32(res.guessesRemaining)
      .string(res.message);
    return w.finish();
  }
  switch (res.ok) {
    case "register-start":
      w.u8(RESULT_TAG[res.ok]).bytes(res.registrationResponse).fixed(res.ticket);
      break;
    case "register-finish":
      w.u8(RESULT_TAG[res.ok]).u32(res.guessesAllowed);
      break;
    case "recover-start":
      w.u8(RESULT_TAG[res.ok]).fixed(res.sessionId).bytes(res.ke2).u32(res.guessesRemaining);
      break;
    case "recover-finish":
      w.u8(RESULT_TAG[res.ok]).bytes(res.wrappedKey).u32(res.guessesAllowed);
      break;
  }
  return w.finish();
}

export function decodeVaultResult(bytes: Uint8Array): VaultResult {
  const r = new Reader(bytes, "vault response");
  const tag = r.u8("result tag");
  let res: VaultResult;
  switch (tag) {
    case RESULT_TAG["register-start"]:
      res = {
        ok: "register-start",
        registrationResponse: r.sized("registration response", OpaqueSize.registrationResponse),
        ticket: r.fixed(TICKET_BYTES, "registration ticket"),
      };
      break;
    case RESULT_TAG["register-finish"]:
      res = { ok: "register-finish", guessesAllowed: r.u32("guesses allowed") };
      break;
    case RESULT_TAG["recover-start"]:
      res = {
        ok: "recover-start",
        sessionId: r.fixed(SESSION_ID_BYTES, "session id"),
        ke2: r.sized("KE2", OpaqueSize.ke2),
        guessesRemaining: r.u32("guesses remaining"),
      };
      break;
    case RESULT_TAG["recover-finish"]:
      res = {
        ok: "recover-finish",
        wrappedKey: r.bytes("wrapped key", MAX_WRAPPED_KEY_BYTES),
        guessesAllowed: r.u32("guesses allowed"),
      };
      break;
    case RESULT_TAG.error: {
      const i = r.u8("error code");
      const code = VaultErrorCodes[i];
      check(code !== undefined, `vault response: unknown error code ${i}`);
      res = { error: code, guessesRemaining: r.u32("guesses remaining"), message: r.string("message", 512) };
      break;
    }
    default:
      check(false, `vault response: unknown result tag ${tag}`);
  }
  r.end();
  return res;
}
