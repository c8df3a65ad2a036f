/**
 * The client's end of the sealed channel to the HSM: HPKE-seal a request to the vault key (base
 * mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, @hpke/core), and open the response
 * with the key exported from the same HPKE context. The host in between can drop or replay, not read.
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import {
  BkvError,
  decodeResponseEnvelope,
  decodeVaultResult,
  encodeRequestEnvelope,
  encodeVaultRequest,
  envelopeHeader,
  ErrorCode,
  HPKE_INFO,
  RESPONSE_EXPORT_CONTEXT,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

export interface SealedRequest {
  envelope: Uint8Array;
  open(responseEnvelope: Uint8Array): Promise<VaultResult>;
}

export async function sealRequest(
  vaultPublicKey: Uint8Array,
  user: string,
  body: VaultOp,
  now: number = Date.now(),
): Promise<SealedRequest> {
  let recipientPublicKey: CryptoKey;
  try {
    recipientPublicKey = await suite.kem.deserializePublicKey(vaultPublicKey);
  } catch (e) {
    throw new BkvError(ErrorCode.Untrusted, "the vault public key is not a valid X25519 key", { cause: e });
  }
  const sender = await suite.createSenderContext({ recipientPublicKey, info: HPKE_INFO });
  const plaintext = encodeVaultRequest({
    requestId: globalThis.crypto.getRandomValues(new Uint8Array(16)),
    issuedAt: now,
    body,
  });
  const ciphertext = new Uint8Array(await sender.seal(plaintext, envelopeHeader(user)));
  const envelope = encodeRequestEnvelope({ user, enc: new Uint8Array(sender.enc), ciphertext });
  const responseKeyBytes = new Uint8Array(await sender.export(RESPONSE_EXPORT_CONTEXT, 32));
  return {
    envelope,
    async open(responseEnvelope) {
      const env = decodeResponseEnvelope(responseEnvelope);
      let pt: ArrayBuffer;
      try {
        const key = await globalThis.crypto.subtle.importKey("raw", responseKeyBytes, "AES-GCM", false, [
          "decrypt",
        ]);
        pt = await globalThis.crypto.subtle.decrypt(
          { name: "AES-GCM", iv: env.nonce as BufferSource, additionalData: new Uint8Array(0) },
          key,
          env.ciphertext as BufferSource,
        );
      } catch (e) {
        throw new BkvError(ErrorCode.Untrusted, "the vault's response is not sealed for this request", {
          cause: e,
        });
      }
      return decodeVaultResult(new Uint8Array(pt));
    },
  };
}
