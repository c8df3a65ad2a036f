/**
 * RFC 9180 Appendix A.1.1 (base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), and
 * interoperability with @hpke/core in both directions.
 */

import { fromHex, toHex, utf8 } from "@bkv/wire";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { describe, expect, it } from "vitest";
import {
  exportSecret,
  generateX25519KeyPair,
  openFirst,
  sealFirst,
  setupRecipient,
  setupSender,
  x25519PrivateKey,
} from "../src/index.js";

const A11 = {
  info: "4f6465206f6e2061204772656369616e2055726e",
  skRm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
  pkRm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
  enc: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
  key: "4531685d41d65f03dc48f6b8302c05b0",
  baseNonce: "56d890e5accaaf011cff4b7d",
  exporterSecret: "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
  pt: "4265617574792069732074727574682c20747275746820626561757479",
  aad: "436f756e742d30",
  ct: "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
};

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});
const recipient = (enc: string) =>
  setupRecipient(x25519PrivateKey(fromHex(A11.skRm)), fromHex(A11.pkRm), fromHex(enc), fromHex(A11.info));

describe("RFC 9180 A.1.1", () => {
  it("recipient key schedule gives the vector's key, nonce and exporter secret, and opens its ciphertext", () => {
    const ctx = recipient(A11.enc);
    expect(toHex(ctx.key)).toBe(A11.key);
    expect(toHex(ctx.baseNonce)).toBe(A11.baseNonce);
    expect(toHex(ctx.exporterSecret)).toBe(A11.exporterSecret);
    expect(toHex(openFirst(ctx, fromHex(A11.aad), fromHex(A11.ct)))).toBe(A11.pt);
  });

  it("rejects an altered ciphertext, aad or enc", () => {
    const ct = fromHex(A11.ct);
    ct[3]! ^= 1;
    expect(() => openFirst(recipient(A11.enc), fromHex(A11.aad), ct)).toThrow();
    expect(() => openFirst(recipient(A11.enc), utf8("Count-1"), fromHex(A11.ct))).toThrow();
    const enc = fromHex(A11.enc);
    enc[0]! ^= 1;
    expect(() => openFirst(recipient(toHex(enc)), fromHex(A11.aad), fromHex(A11.ct))).toThrow();
  });
});

describe("interop with @hpke/core", () => {
  it("opens what @hpke/core seals and exports the same secret", async () => {
    const kp = generateX25519KeyPair();
    const sender = await suite.createSenderContext({
      recipientPublicKey: await suite.kem.deserializePublicKey(kp.publicKey),
      info: utf8("info"),
    });
    const ct = new Uint8Array(await sender.seal(utf8("hello vault"), utf8("aad")));
    const ctx = setupRecipient(
      x25519PrivateKey(kp.privateKey),
      kp.publicKey,
      new Uint8Array(sender.enc),
      utf8("info"),
    );
    expect(new TextDecoder().decode(openFirst(ctx, utf8("aad"), ct))).toBe("hello vault");
    expect(toHex(exportSecret(ctx, utf8("ctx"), 32))).toBe(
      toHex(new Uint8Array(await sender.export(utf8("ctx"), 32))),
    );
  });

  it("@hpke/core opens what this sender seals", async () => {
    const kp = await suite.kem.generateKeyPair();
    const pk = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
    const { enc, context } = setupSender(pk, utf8("info"));
    const ct = sealFirst(context, utf8("aad"), utf8("hello client"));
    const r = await suite.createRecipientContext({ recipientKey: kp.privateKey, enc, info: utf8("info") });
    expect(new TextDecoder().decode(await r.open(ct, utf8("aad")))).toBe("hello client");
    expect(toHex(new Uint8Array(await r.export(utf8("x"), 32)))).toBe(
      toHex(exportSecret(context, utf8("x"), 32)),
    );
  });
});
