/**
 * Passkeys as a second way to protect K: the WebAuthn PRF extension gives, for each credential, a
 * secret that only the authenticator (after user verification) can compute; K is wrapped under a
 * key derived from it (prf-wrap.ts). The PRF output and K stay in the browser; the app stores only
 * the PasskeyWrap. The WebAuthn calls are here, the crypto is in prf-wrap.ts.
 */
import { BkvError, ErrorCode, toBase64Url } from "@bkv/wire";
import {
  checkWrapKeyId,
  decodePasskeyWrap,
  newPasskeySalt,
  PASSKEY_PRF_OUTPUT_SIZE,
  type PasskeyWrap,
  passkeyPrfInput,
  unwrapWithPrf,
  wrapWithPrf,
} from "./prf-wrap.js";

/** What this module needs of `navigator.credentials` (a CredentialsContainer has both). */
export type PasskeyCredentials = Pick<CredentialsContainer, "create" | "get">;

export interface EnrollPasskeyOptions {
  user: string;
  userDisplayName?: string;
  /** The relying party: `id` defaults to the page's effective domain. */
  rp: { id?: string; name: string };
  /** K, 32 bytes. */
  backupKey: Uint8Array;
  label?: string;
  /** Default: navigator.credentials. */
  credentials?: PasskeyCredentials;
  signal?: AbortSignal;
}

export interface RecoverWithPasskeyOptions {
  user: string;
  /** The user's wraps (any number of passkeys); the one whose passkey the user picks is opened. */
  wraps: PasskeyWrap[];
  /**
   * The key id in the header of the backup being restored (decodeBackupHeader(first
   * BACKUP_HEADER_SIZE bytes).keyId): only wraps of that K are offered, so an old wrap served
   * after K was rotated is refused (WRONG_KEY), not opened.
   */
  keyId: Uint8Array;
  rp?: { id?: string };
  credentials?: PasskeyCredentials;
  signal?: AbortSignal;
}

const NOT_SUPPORTED = "this authenticator does not support the PRF extension";

/** COSE algorithms: ES256, EdDSA, RS256. */
const PUB_KEY_CRED_PARAMS: PublicKeyCredentialParameters[] = [
  { type: "public-key", alg: -7 },
  { type: "public-key", alg: -8 },
  { type: "public-key", alg: -257 },
];

/** The parts of a PublicKeyCredential used here (checked, not trusted to be one). */
interface PrfCredential {
  rawId: ArrayBuffer;
  getClientExtensionResults(): AuthenticationExtensionsClientOutputs;
}

function defaultCredentials(): PasskeyCredentials {
  const c = (globalThis as { navigator?: { credentials?: PasskeyCredentials } }).navigator?.credentials;
  if (c === undefined || typeof c.create !== "function" || typeof c.get !== "function") {
    throw new BkvError(
      ErrorCode.Unavailable,
      "WebAuthn (navigator.credentials) is not available here; it needs a secure context",
    );
  }
  return c;
}

function random(n: number): Uint8Array<ArrayBuffer> {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

function asCredential(c: Credential | null): PrfCredential {
  const p = c as unknown as PrfCredential | null;
  if (
    p === null ||
    typeof p !== "object" ||
    !(p.rawId instanceof ArrayBuffer) ||
    typeof p.getClientExtensionResults !== "function"
  ) {
    throw new BkvError(ErrorCode.Invalid, "WebAuthn returned no public-key credential");
  }
  return p;
}

/** Map a WebAuthn rejection to a BkvError; `notUsed` is the message for a cancelled ceremony. */
function webAuthnError(e: unknown, notUsed: string): BkvError {
  if (e instanceof BkvError) return e;
  const name = (e as { name?: unknown } | null)?.name;
  if (name === "NotAllowedError" || name === "AbortError") {
    return new BkvError(ErrorCode.Forbidden, notUsed, { cause: e });
  }
  if (name === "NotSupportedError") return new BkvError(ErrorCode.Invalid, NOT_SUPPORTED, { cause: e });
  const message = (e as { message?: unknown } | null)?.message;
  return new BkvError(
    ErrorCode.Unavailable,
    `WebAuthn failed: ${String(name ?? "")} ${String(message ?? "")}`,
    {
      cause: e,
    },
  );
}

/** The PRF "first" result as a copy (the caller zeroes it), or undefined. */
function prfFirst(c: PrfCredential): Uint8Array | undefined {
  const first = c.getClientExtensionResults().prf?.results?.first;
  if (first === undefined) return undefined;
  const view =
    first instanceof ArrayBuffer
      ? new Uint8Array(first)
      : new Uint8Array(first.buffer, first.byteOffset, first.byteLength);
  const out = new Uint8Array(view);
  if (out.length !== PASSKEY_PRF_OUTPUT_SIZE) {
    out.fill(0);
    throw new BkvError(ErrorCode.Invalid, "the authenticator's PRF output is not 32 bytes");
  }
  return out;
}

async function getAssertion(
  credentials: PasskeyCredentials,
  rpId: string | undefined,
  allow: Uint8Array<ArrayBuffer>[],
  inputs: Record<string, AuthenticationExtensionsPRFValues>,
  signal: AbortSignal | undefined,
): Promise<PrfCredential> {
  const publicKey: PublicKeyCredentialRequestOptions = {
    challenge: random(32),
    allowCredentials: allow.map((id) => ({ type: "public-key", id })),
    userVerification: "required",
    extensions: { prf: { evalByCredential: inputs } },
  };
  if (rpId !== undefined) publicKey.rpId = rpId;
  const options: CredentialRequestOptions = { publicKey };
  if (signal !== undefined) options.signal = signal;
  try {
    return asCredential(await credentials.get(options));
  } catch (e) {
    throw webAuthnError(e, "the passkey was not used");
  }
}

/**
 * Create a passkey with the PRF extension and wrap K under it. The user handle is 16 random bytes,
 * so a new passkey never replaces another credential of the same authenticator (the app's login
 * passkey, or another backup passkey). Throws INVALID if the authenticator has no PRF, FORBIDDEN if
 * the user cancels.
 */
export async function enrollPasskey(o: EnrollPasskeyOptions): Promise<PasskeyWrap> {
  const credentials = o.credentials ?? defaultCredentials();
  const salt = newPasskeySalt();
  const first = await passkeyPrfInput(salt);
  const rp: PublicKeyCredentialRpEntity = { name: o.rp.name };
  if (o.rp.id !== undefined) rp.id = o.rp.id;
  const options: CredentialCreationOptions = {
    publicKey: {
      challenge: random(32),
      rp,
      user: { id: random(16), name: o.user, displayName: o.userDisplayName ?? o.user },
      pubKeyCredParams: PUB_KEY_CRED_PARAMS,
      authenticatorSelection: { residentKey: "preferred", userVerification: "required" },
      extensions: { prf: { eval: { first: first as Uint8Array<ArrayBuffer> } } },
    },
  };
  if (o.signal !== undefined) options.signal = o.signal;
  let created: PrfCredential;
  try {
    created = asCredential(await credentials.create(options));
  } catch (e) {
    throw webAuthnError(e, "the passkey was not created");
  }
  const credentialId = new Uint8Array(created.rawId.slice(0));
  let prf = prfFirst(created);
  if (prf === undefined) {
    // Many authenticators only report `enabled` at creation; the PRF output takes an assertion.
    if (created.getClientExtensionResults().prf?.enabled !== true) {
      throw new BkvError(ErrorCode.Invalid, NOT_SUPPORTED);
    }
    const asserted = await getAssertion(
      credentials,
      o.rp.id,
      [credentialId],
      { [toBase64Url(credentialId)]: { first: first as Uint8Array<ArrayBuffer> } },
      o.signal,
    );
    if (toBase64Url(new Uint8Array(asserted.rawId)) !== toBase64Url(credentialId)) {
      throw new BkvError(
        ErrorCode.Invalid,
        "WebAuthn answered with another passkey than the one just created",
      );
    }
    prf = prfFirst(asserted);
    if (prf === undefined) throw new BkvError(ErrorCode.Invalid, NOT_SUPPORTED);
  }
  try {
    const opts: { label?: string } = {};
    if (o.label !== undefined) opts.label = o.label;
    return await wrapWithPrf(prf, salt, o.user, credentialId, o.backupKey, opts);
  } finally {
    prf.fill(0);
  }
}

/**
 * Recover K with any of the user's passkeys: one WebAuthn assertion offering every credential whose
 * wrap holds the K of the backup being restored (`keyId`), each with the PRF input of its own salt.
 * INVALID without wraps (or without PRF), WRONG_KEY if the user's wraps all hold another key (old
 * wraps served after K was rotated) or the wrap does not open, FORBIDDEN if the user cancels.
 */
export async function recoverWithPasskey(
  o: RecoverWithPasskeyOptions,
): Promise<{ backupKey: Uint8Array; credentialId: string }> {
  const byId = new Map<
    string,
    { wrap: PasskeyWrap; first: Uint8Array<ArrayBuffer>; id: Uint8Array<ArrayBuffer> }
  >();
  let otherKey: BkvError | undefined;
  for (const wrap of o.wraps) {
    if (wrap.user !== o.user) continue;
    const { credentialId, salt } = decodePasskeyWrap(wrap);
    try {
      checkWrapKeyId(wrap, o.keyId);
    } catch (e) {
      if (!(e instanceof BkvError) || e.code !== ErrorCode.WrongKey) throw e;
      otherKey ??= e;
      continue;
    }
    const key = toBase64Url(credentialId);
    if (byId.has(key)) throw new BkvError(ErrorCode.Invalid, "two passkey wraps name the same credential");
    const first = (await passkeyPrfInput(salt)) as Uint8Array<ArrayBuffer>;
    byId.set(key, { wrap, first, id: new Uint8Array(credentialId) });
  }
  if (byId.size === 0 && otherKey !== undefined) throw otherKey;
  if (byId.size === 0) throw new BkvError(ErrorCode.Invalid, "no passkey is enrolled for this user");
  const credentials = o.credentials ?? defaultCredentials();
  const inputs: Record<string, AuthenticationExtensionsPRFValues> = {};
  for (const [key, e] of byId) inputs[key] = { first: e.first };
  const asserted = await getAssertion(
    credentials,
    o.rp?.id,
    [...byId.values()].map((e) => e.id),
    inputs,
    o.signal,
  );
  const used = toBase64Url(new Uint8Array(asserted.rawId));
  const entry = byId.get(used);
  if (entry === undefined)
    throw new BkvError(ErrorCode.Invalid, "the passkey used has no wrap for this user");
  const prf = prfFirst(asserted);
  if (prf === undefined) throw new BkvError(ErrorCode.Invalid, NOT_SUPPORTED);
  try {
    return { backupKey: await unwrapWithPrf(prf, entry.wrap, o.user, o.keyId), credentialId: used };
  } finally {
    prf.fill(0);
  }
}
