/**
 * The OPAQUE server setup is made from the platform's randomness (not the global crypto): the same
 * platform bytes give the same setup, its OPRF seed is those bytes and its AKE key the reduced
 * scalar of the next 64; the library reads it back and runs registration and login with it.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { fromBase64Url, toBase64Url } from "@bkv/wire";
import { ristretto255 } from "@noble/curves/ed25519.js";
import * as opaque from "@serenity-kit/opaque";
import { beforeAll, describe, expect, it } from "vitest";
import {
  OPAQUE_SETUP_RANDOM_BYTES,
  opaqueServerSetupFrom,
  opaqueSetupFromSeed,
} from "../src/opaque-setup.js";

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const le = (b: Uint8Array) => b.reduceRight((x, v) => (x << 8n) | BigInt(v), 0n);

beforeAll(async () => {
  await opaque.ready;
});

describe("OPAQUE server setup from platform randomness", () => {
  it("is a function of the platform's bytes: seed as given, AKE key = the reduced scalar", () => {
    const r = new Uint8Array(randomBytes(OPAQUE_SETUP_RANDOM_BYTES));
    const a = opaqueServerSetupFrom(r);
    const b = opaqueServerSetupFrom(r);
    expect(opaque.server.getPublicKey(a)).toBe(opaque.server.getPublicKey(b));
    expect(fromBase64Url(a).subarray(0, 96)).toEqual(fromBase64Url(b).subarray(0, 96));
    const bytes = fromBase64Url(a);
    expect(bytes.subarray(0, 64)).toEqual(r.subarray(0, 64));
    const x = le(r.subarray(64, 128)) % L;
    expect(le(bytes.subarray(64, 96))).toBe(x);
    expect(opaque.server.getPublicKey(a)).toBe(toBase64Url(ristretto255.Point.BASE.multiply(x).toBytes()));
    const other = opaqueServerSetupFrom(new Uint8Array(randomBytes(OPAQUE_SETUP_RANDOM_BYTES)));
    expect(opaque.server.getPublicKey(other)).not.toBe(opaque.server.getPublicKey(a));
  });

  it("registers and logs in with the library", () => {
    const serverSetup = opaqueServerSetupFrom(new Uint8Array(randomBytes(OPAQUE_SETUP_RANDOM_BYTES)));
    const password = "2468";
    const userIdentifier = "user";
    const reg = opaque.client.startRegistration({ password });
    const { registrationResponse } = opaque.server.createRegistrationResponse({
      serverSetup,
      userIdentifier,
      registrationRequest: reg.registrationRequest,
    });
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState: reg.clientRegistrationState,
      registrationResponse,
      password,
    });
    const login = opaque.client.startLogin({ password });
    const started = opaque.server.startLogin({
      serverSetup,
      userIdentifier,
      registrationRecord,
      startLoginRequest: login.startLoginRequest,
    });
    const done = opaque.client.finishLogin({
      clientLoginState: login.clientLoginState,
      loginResponse: started.loginResponse,
      password,
    });
    expect(done?.serverStaticPublicKey).toBe(opaque.server.getPublicKey(serverSetup));
    const fin = opaque.server.finishLogin({
      finishLoginRequest: done!.finishLoginRequest,
      serverLoginState: started.serverLoginState,
    });
    expect(fin.sessionKey).toBe(done!.sessionKey);
  });

  it("refuses the wrong number of bytes and a zero scalar", () => {
    expect(() => opaqueServerSetupFrom(new Uint8Array(127))).toThrow(/128 random bytes/);
    const zero = new Uint8Array(128).fill(1);
    zero.fill(0, 64);
    expect(() => opaqueServerSetupFrom(zero)).toThrow(/zero scalar/);
  });

  it("the fleet's setup is HKDF of its signing seed (platform randomness), under its own label", () => {
    const crypto = {
      hkdf: (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, n: number) =>
        new Uint8Array(hkdfSync("sha256", ikm, salt, info, n)),
    };
    const seed = new Uint8Array(randomBytes(32));
    const setup = opaqueSetupFromSeed(crypto, seed);
    const expected = crypto.hkdf(
      seed,
      new TextEncoder().encode("bkv/opaque-setup/v1"),
      new TextEncoder().encode("OPRF seed and AKE private key"),
      OPAQUE_SETUP_RANDOM_BYTES,
    );
    expect(fromBase64Url(setup).subarray(0, 96)).toEqual(
      fromBase64Url(opaqueServerSetupFrom(expected)).subarray(0, 96),
    );
    expect(fromBase64Url(setup).subarray(0, 64)).toEqual(expected.subarray(0, 64));
    expect(opaque.server.getPublicKey(opaqueSetupFromSeed(crypto, seed))).toBe(
      opaque.server.getPublicKey(setup),
    );
    const other = opaqueSetupFromSeed(crypto, new Uint8Array(randomBytes(32)));
    expect(opaque.server.getPublicKey(other)).not.toBe(opaque.server.getPublicKey(setup));
    expect(() => opaqueSetupFromSeed(crypto, new Uint8Array(31))).toThrow(/32 bytes/);
  });
});
