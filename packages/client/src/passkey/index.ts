/**
 * Passkeys (WebAuthn PRF) as a second way to protect the backup key K, beside the PIN.
 */

export {
  type CredentialIdLike,
  checkWrapKeyId,
  decodePasskeyWrap,
  derivePasskeyKek,
  newPasskeySalt,
  PASSKEY_PRF_OUTPUT_SIZE,
  PASSKEY_SALT_SIZE,
  PASSKEY_WRAP_VERSION,
  type PasskeyWrap,
  parsePasskeyWrap,
  passkeyPrfInput,
  unwrapWithPrf,
  wrapWithPrf,
} from "./prf-wrap.js";
export {
  type EnrollPasskeyOptions,
  enrollPasskey,
  type PasskeyCredentials,
  type RecoverWithPasskeyOptions,
  recoverWithPasskey,
} from "./webauthn.js";
