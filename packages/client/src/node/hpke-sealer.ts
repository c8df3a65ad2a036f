/** The vault channel's HPKE sender on node:crypto (@bkv/hpke): same bytes as @hpke/core, ~20x faster here. */
import { createDecipheriv } from "node:crypto";
import { exportSecret, sealFirst, setupSender } from "@bkv/hpke";
import { BkvError, ErrorCode } from "@bkv/wire";
import type { HpkeSealer } from "../vault/channel.js";

export const nodeHpkeSealer: HpkeSealer = {
  async seal(a) {
    let s: ReturnType<typeof setupSender>;
    try {
      s = setupSender(a.recipientPublicKey, a.info);
    } catch (e) {
      throw new BkvError(ErrorCode.Untrusted, "the vault public key is not a valid X25519 key", { cause: e });
    }
    return {
      enc: s.enc,
      ciphertext: sealFirst(s.context, a.aad, a.plaintext),
      exported: exportSecret(s.context, a.exportContext, a.exportLength),
    };
  },
  async openResponse(key, nonce, ciphertext) {
    if (ciphertext.length < 16) throw new Error("ciphertext too short");
    const d = createDecipheriv("aes-256-gcm", key, nonce);
    d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
    return new Uint8Array(
      Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]),
    );
  },
};
