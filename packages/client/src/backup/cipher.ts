/**
 * The AEAD the backup format runs on, behind a small interface so the same format code uses
 * WebCrypto in browsers and node:crypto in Node. A ChunkCipher does AES-256-GCM with a 12-byte nonce
 * and a 16-byte tag under one fixed key; a ChunkCipherFactory makes one from a 32-byte key.
 */
import { bufferSource, subtle } from "./webcrypto.js";

export type MaybePromise<T> = T | Promise<T>;

export const GCM_NONCE_SIZE = 12;
export const GCM_TAG_SIZE = 16;

/**
 * Implementations must be done reading their arguments when the call returns (WebCrypto copies them
 * at the call; node:crypto works synchronously), since callers reuse their buffers.
 */
export interface ChunkCipher {
  /**
   * Encrypts `plaintext`. The result is ciphertext || 16-byte tag, given as one or more parts to be
   * written in order, so an implementation that produces them separately need not copy them.
   */
  seal(nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): MaybePromise<Uint8Array[]>;
  /** Decrypts ciphertext || tag, returning the plaintext; throws (anything) if it does not authenticate. */
  open(nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): MaybePromise<Uint8Array>;
}

export type ChunkCipherFactory = (key: Uint8Array) => MaybePromise<ChunkCipher>;

/** AES-256-GCM on WebCrypto: works in browsers and in Node (slower there than node:crypto). */
export const webCryptoCipher: ChunkCipherFactory = async (key) => {
  const s = subtle();
  const k = await s.importKey("raw", bufferSource(key), "AES-GCM", false, ["encrypt", "decrypt"]);
  const params = (nonce: Uint8Array, aad: Uint8Array): AesGcmParams => ({
    name: "AES-GCM",
    iv: bufferSource(nonce),
    additionalData: bufferSource(aad),
    tagLength: GCM_TAG_SIZE * 8,
  });
  return {
    async seal(nonce, plaintext, aad) {
      return [new Uint8Array(await s.encrypt(params(nonce, aad), k, bufferSource(plaintext)))];
    },
    async open(nonce, sealed, aad) {
      return new Uint8Array(await s.decrypt(params(nonce, aad), k, bufferSource(sealed)));
    },
  };
};
