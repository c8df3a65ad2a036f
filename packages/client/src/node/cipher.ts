/**
 * AES-256-GCM for the backup format on node:crypto: synchronous, so the format code runs without a
 * promise per chunk, and it hands back ciphertext and tag as node produces them, without a copy.
 */
import { createCipheriv, createDecipheriv, createSecretKey } from "node:crypto";
import { type ChunkCipher, type ChunkCipherFactory, GCM_TAG_SIZE } from "../backup/index.js";

const GCM_OPTIONS = { authTagLength: GCM_TAG_SIZE };

export const nodeChunkCipher: ChunkCipherFactory = (key: Uint8Array): ChunkCipher => {
  if (key.length !== 32) throw new RangeError("AES-256-GCM needs a 32-byte key");
  const k = createSecretKey(key);
  return {
    seal(nonce, plaintext, aad) {
      const c = createCipheriv("aes-256-gcm", k, nonce, GCM_OPTIONS);
      c.setAAD(aad);
      const ct = c.update(plaintext);
      const rest = c.final();
      return rest.length === 0 ? [ct, c.getAuthTag()] : [ct, rest, c.getAuthTag()];
    },
    open(nonce, sealed, aad) {
      if (sealed.length < GCM_TAG_SIZE) throw new RangeError("sealed chunk shorter than its tag");
      const split = sealed.length - GCM_TAG_SIZE;
      const d = createDecipheriv("aes-256-gcm", k, nonce, GCM_OPTIONS);
      d.setAAD(aad);
      d.setAuthTag(sealed.subarray(split));
      const pt = d.update(sealed.subarray(0, split));
      const rest = d.final();
      return rest.length === 0 ? pt : Buffer.concat([pt, rest]);
    },
  };
};
