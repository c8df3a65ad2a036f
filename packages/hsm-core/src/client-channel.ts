/**
 * The HSM's end of the client channel: open an HPKE-sealed request envelope with the vault key,
 * and seal the answer under the key exported from the same HPKE context, so only that request's
 * sender can read it and the host can neither read nor alter either.
 */
import {
  BkvError,
  decodeRequestEnvelope,
  ErrorCode,
  encodeResponseEnvelope,
  encodeVaultResult,
  envelopeHeader,
  HPKE_INFO,
  RESPONSE_EXPORT_CONTEXT,
  type VaultResult,
} from "@bkv/wire";
import type { HsmPlatform } from "./platform.js";

export interface OpenedRequest {
  /** The user id from the envelope's header (the HPKE associated data, so authenticated). */
  user: string;
  plaintext: Uint8Array;
  /** Seal an answer for this request's sender. */
  seal(result: VaultResult): Promise<Uint8Array>;
}

/** Throws BkvError MALFORMED (does not decode) or AUTHENTICATION (does not open under the key). */
export async function openRequest(
  platform: HsmPlatform,
  vaultPrivateKey: Uint8Array,
  envelopeBytes: Uint8Array,
): Promise<OpenedRequest> {
  let env: ReturnType<typeof decodeRequestEnvelope>;
  try {
    env = decodeRequestEnvelope(envelopeBytes);
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, (e as Error).message);
  }
  let opened: { plaintext: Uint8Array; exported: Uint8Array };
  try {
    opened = await platform.crypto.hpkeOpen({
      privateKey: vaultPrivateKey,
      enc: env.enc,
      info: HPKE_INFO,
      aad: envelopeHeader(env.user),
      ciphertext: env.ciphertext,
      exportContext: RESPONSE_EXPORT_CONTEXT,
      exportLength: 32,
    });
  } catch {
    throw new BkvError(
      ErrorCode.Authentication,
      "request does not open under the vault key (altered, or sealed to another key)",
    );
  }
  return {
    user: env.user,
    plaintext: opened.plaintext,
    async seal(result) {
      const nonce = platform.randomBytes(12);
      const ct = await platform.crypto.aeadSeal(
        opened.exported,
        nonce,
        encodeVaultResult(result),
        new Uint8Array(0),
      );
      return encodeResponseEnvelope({ nonce, ciphertext: ct });
    },
  };
}
