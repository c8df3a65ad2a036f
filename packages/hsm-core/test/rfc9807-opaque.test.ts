/**
 * RFC 9807 (OPAQUE) vectors, as far as @serenity-kit/opaque allows: it draws its own randomness, so
 * only the deterministic steps are known answers (the server's registration response and public
 * key, from the vector's OPRF seed and server key). Message sizes are checked for every vector of
 * our suite, and our strict decoders accept exactly those sizes.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import {
  decodeVaultRequest,
  encodeVaultRequest,
  fromBase64Url,
  fromHex,
  fromUtf8,
  isBkvError,
  OpaqueSize,
  toBase64Url,
  toHex,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";

interface Vector {
  config: Record<string, string>;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
}

const file = fileURLToPath(new URL("../../../../shared/vectors/opaque/vectors_v16.json.gz", import.meta.url));
const vectors = JSON.parse(gunzipSync(readFileSync(file)).toString("utf8")) as Vector[];
const ours = vectors.filter(
  (v) => v.config.Group === "ristretto255" && v.config.Hash === "SHA512" && v.config.Fake === "False",
);

describe("RFC 9807 vectors, ristretto255-SHA512", () => {
  it("has real-record vectors for our suite", () => {
    expect(ours.length).toBeGreaterThanOrEqual(2);
  });

  it("message sizes match the wire checks", () => {
    for (const v of ours) {
      expect(fromHex(v.outputs.registration_request!).length).toBe(OpaqueSize.registrationRequest);
      expect(fromHex(v.outputs.registration_response!).length).toBe(OpaqueSize.registrationResponse);
      expect(fromHex(v.outputs.registration_upload!).length).toBe(OpaqueSize.registrationRecord);
      expect(fromHex(v.outputs.KE1!).length).toBe(OpaqueSize.ke1);
      expect(fromHex(v.outputs.KE2!).length).toBe(OpaqueSize.ke2);
      expect(fromHex(v.outputs.KE3!).length).toBe(OpaqueSize.ke3);
    }
  });

  it("the server's registration response and public key are the known answers", async () => {
    await opaque.ready;
    for (const v of ours) {
      // opaque-ke's ServerSetup: oprf_seed || server private key || a public key for fake records.
      const setup = toBase64Url(
        fromHex(v.inputs.oprf_seed! + v.inputs.server_private_key! + v.inputs.server_public_key!),
      );
      expect(toHex(fromBase64Url(opaque.server.getPublicKey(setup)))).toBe(v.inputs.server_public_key);
      const { registrationResponse } = opaque.server.createRegistrationResponse({
        serverSetup: setup,
        userIdentifier: fromUtf8(fromHex(v.inputs.credential_identifier!)),
        registrationRequest: toBase64Url(fromHex(v.outputs.registration_request!)),
      });
      expect(toHex(fromBase64Url(registrationResponse))).toBe(v.outputs.registration_response);
    }
  });

  it("vault requests carry the vector messages and reject a byte more or less", () => {
    const v = ours[0]!;
    const requestId = new Uint8Array(16);
    const ke1 = fromHex(v.outputs.KE1!);
    const ok = encodeVaultRequest({ requestId, issuedAt: 1, body: { op: "recover-start", ke1 } });
    expect(toHex((decodeVaultRequest(ok).body as { ke1: Uint8Array }).ke1)).toBe(v.outputs.KE1);
    for (const bad of [ke1.subarray(1), new Uint8Array([...ke1, 0])]) {
      const enc = encodeVaultRequest({ requestId, issuedAt: 1, body: { op: "recover-start", ke1: bad } });
      let err: unknown;
      try {
        decodeVaultRequest(enc);
      } catch (e) {
        err = e;
      }
      expect(isBkvError(err, "MALFORMED")).toBe(true);
    }
    const rec = fromHex(v.outputs.registration_upload!);
    const reg = encodeVaultRequest({
      requestId,
      issuedAt: 1,
      body: {
        op: "register-finish",
        replace: true,
        ticket: new Uint8Array(16),
        registrationRecord: rec,
        wrappedKey: new Uint8Array(61),
      },
    });
    expect(decodeVaultRequest(reg).body.op).toBe("register-finish");
  });
});
