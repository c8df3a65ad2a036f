/**
 * The cryptography a recovery cannot avoid, measured in this process on one core: what the fleet's
 * cost per recovery is compared with. A recovery is one OPAQUE server login (startLogin on KE1,
 * finishLogin on KE3) and two sealed requests, each an HPKE open (base mode, X25519) of the request
 * plus an AES-256-GCM seal of the answer under the exported key, with the HSM's own implementation
 * (`nodeHsmCrypto`, the software platform's). Bench users use light client-side key stretching
 * (Argon2id t=1, m=8 KiB): stretching runs on the client and costs the server nothing.
 */
import { nodeHpkeSealer } from "@bkv/client/node";
import { nodeHsmCrypto } from "@bkv/hsm-software";
import { HPKE_INFO, RESPONSE_EXPORT_CONTEXT, utf8 } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";

export const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

/** Raw OPAQUE server logins (startLogin + finishLogin) per second on one core. */
export async function rawOpaqueLogins(seconds: number): Promise<number> {
  await opaque.ready;
  const serverSetup = opaque.server.createSetup();
  const password = "1234";
  const reg = opaque.client.startRegistration({ password });
  const { registrationResponse } = opaque.server.createRegistrationResponse({
    serverSetup,
    userIdentifier: "u",
    registrationRequest: reg.registrationRequest,
  });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState: reg.clientRegistrationState,
    registrationResponse,
    password,
    keyStretching: LIGHT,
  });
  const logins = Array.from({ length: 64 }, () => opaque.client.startLogin({ password }));
  const first = opaque.server.startLogin({
    serverSetup,
    registrationRecord,
    startLoginRequest: logins[0]!.startLoginRequest,
    userIdentifier: "u",
  });
  const fin = opaque.client.finishLogin({
    clientLoginState: logins[0]!.clientLoginState,
    loginResponse: first.loginResponse,
    password,
    keyStretching: LIGHT,
  })!;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const s = opaque.server.startLogin({
      serverSetup,
      registrationRecord,
      startLoginRequest: logins[n % logins.length]!.startLoginRequest,
      userIdentifier: "u",
    });
    // finishLogin of the first session's KE3 against each state is the same work as a real finish.
    try {
      opaque.server.finishLogin({
        serverLoginState: s.serverLoginState,
        finishLoginRequest: fin.finishLoginRequest,
      });
    } catch {
      // a KE3 from another session fails its MAC check after the same work
    }
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** Milliseconds of one HSM-side HPKE operation: open a sealed request, seal its answer. */
export async function rawHpkeOpMs(seconds: number): Promise<number> {
  const crypto = nodeHsmCrypto();
  const { privateKey, publicKey } = await crypto.hpkeGenerateKeyPair();
  const aad = utf8("bench header");
  const requests = await Promise.all(
    Array.from({ length: 64 }, () =>
      nodeHpkeSealer.seal({
        recipientPublicKey: publicKey,
        info: HPKE_INFO,
        aad,
        plaintext: new Uint8Array(120),
        exportContext: RESPONSE_EXPORT_CONTEXT,
        exportLength: 32,
      }),
    ),
  );
  const nonce = new Uint8Array(12);
  const answer = new Uint8Array(200);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const r = requests[n % requests.length]!;
    const opened = await crypto.hpkeOpen({
      privateKey,
      enc: r.enc,
      info: HPKE_INFO,
      aad,
      ciphertext: r.ciphertext,
      exportContext: RESPONSE_EXPORT_CONTEXT,
      exportLength: 32,
    });
    await crypto.aeadSeal(opened.exported, nonce, answer, new Uint8Array(0));
    n++;
  }
  return (performance.now() - t0) / n;
}

export interface RawCrypto {
  /** OPAQUE server logins per second on one core. */
  opaqueLoginsPerSecond: number;
  /** One HSM-side HPKE operation (open the request, seal the answer), ms. */
  hpkeOpMs: number;
  /** One OPAQUE server login plus two HPKE operations: the crypto of one recovery, ms. */
  perRecoveryMs: number;
}

export async function rawCrypto(seconds = 3): Promise<RawCrypto> {
  const logins = await rawOpaqueLogins(seconds);
  const hpke = await rawHpkeOpMs(Math.max(1, seconds / 3));
  return { opaqueLoginsPerSecond: logins, hpkeOpMs: hpke, perRecoveryMs: 1000 / logins + 2 * hpke };
}
