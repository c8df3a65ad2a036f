/**
 * The client's end of the sealed channel to the HSM: HPKE-seal a request to the vault key (base
 * mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM), and open the response with the key
 * exported from the same HPKE context. The host in between can drop or replay, not read or alter.
 */

import {
  BkvError,
  decodeResponseEnvelope,
  decodeVaultResult,
  ErrorCode,
  encodeRequestEnvelope,
  encodeVaultRequest,
  envelopeHeader,
  HPKE_INFO,
  RESPONSE_EXPORT_CONTEXT,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

/**
 * HPKE sender for one message and one exported secret. The default runs on WebCrypto (@hpke/core);
 * Node callers may pass nodeHpkeSealer from @bkv/client/node, the same on node:crypto, much faster.
 */
export interface HpkeSealer {
  seal(args: {
    recipientPublicKey: Uint8Array;
    info: Uint8Array;
    aad: Uint8Array;
    plaintext: Uint8Array;
    exportContext: Uint8Array;
    exportLength: number;
  }): Promise<{ enc: Uint8Array; ciphertext: Uint8Array; exported: Uint8Array }>;
  /** Open the response: AES-256-GCM under the exported key (default: WebCrypto). */
  openResponse?(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array>;
}

async function webCryptoOpenResponse(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  const k = await globalThis.crypto.subtle.importKey("raw", key as BufferSource, "AES-GCM", false, [
    "decrypt",
  ]);
  const pt = await globalThis.crypto.subtle.decrypt(
    { name: "AES-GCM", iv: nonce as BufferSource, additionalData: new Uint8Array(0) },
    k,
    ciphertext as BufferSource,
  );
  return new Uint8Array(pt);
}

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

export const webCryptoHpkeSealer: HpkeSealer = {
  async seal(a) {
    let recipientPublicKey: CryptoKey;
    try {
      recipientPublicKey = await suite.kem.deserializePublicKey(a.recipientPublicKey);
    } catch (e) {
      throw new BkvError(ErrorCode.Untrusted, "the vault public key is not a valid X25519 key", { cause: e });
    }
    const sender = await suite.createSenderContext({ recipientPublicKey, info: a.info });
    const ciphertext = new Uint8Array(await sender.seal(a.plaintext, a.aad));
    const exported = new Uint8Array(await sender.export(a.exportContext, a.exportLength));
    return { enc: new Uint8Array(sender.enc), ciphertext, exported };
  },
};

export interface SealedRequest {
  envelope: Uint8Array;
  open(responseEnvelope: Uint8Array): Promise<VaultResult>;
}

export async function sealRequest(
  vaultPublicKey: Uint8Array,
  user: string,
  body: VaultOp,
  now: number = Date.now(),
  hpke: HpkeSealer = webCryptoHpkeSealer,
): Promise<SealedRequest> {
  const plaintext = encodeVaultRequest({
    requestId: globalThis.crypto.getRandomValues(new Uint8Array(16)),
    issuedAt: now,
    body,
  });
  const sealed = await hpke.seal({
    recipientPublicKey: vaultPublicKey,
    info: HPKE_INFO,
    aad: envelopeHeader(user),
    plaintext,
    exportContext: RESPONSE_EXPORT_CONTEXT,
    exportLength: 32,
  });
  const envelope = encodeRequestEnvelope({ user, enc: sealed.enc, ciphertext: sealed.ciphertext });
  const responseKey = sealed.exported;
  return {
    envelope,
    async open(responseEnvelope) {
      const env = decodeResponseEnvelope(responseEnvelope);
      let pt: Uint8Array;
      try {
        pt = await (hpke.openResponse ?? webCryptoOpenResponse)(responseKey, env.nonce, env.ciphertext);
      } catch (e) {
        throw new BkvError(ErrorCode.Untrusted, "the vault's response is not sealed for this request", {
          cause: e,
        });
      }
      return decodeVaultResult(pt);
    },
  };
}
