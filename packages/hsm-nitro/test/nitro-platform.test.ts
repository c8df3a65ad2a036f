/**
 * The Nitro platform adapter, as far as this machine allows: the exact bytes of its requests to the
 * NSM (as the nsm-api's serde encoding writes them), its identity (an NSM document naming its keys
 * and image, verified by the client's verifier), and sealing by measurement against the TEST
 * DOUBLES of the NSM and of a KMS key policy (test-double-nsm.ts; not AWS, and they say so): an
 * enclave of another image is refused the seal secret; a restart is a new member with no NVRAM.
 */
import { nitroImageMeasurement, verifyNitroMember } from "@bkv/client";
import {
  decodeNsmResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeGetRandomRequest,
  nsmRandom,
  openNitroPlatform,
  TestDoubleKms,
  TestDoubleNitroPki,
  TestDoubleNsm,
  testDoublePcr,
} from "@bkv/hsm-nitro";
import { BkvError, decodeAttestation, toHex, utf8 } from "@bkv/wire";
import { describe, expect, it } from "vitest";

const hex = (b: Uint8Array) => toHex(b);
const text = (s: string) => hex(utf8(s));

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    return `${(e as BkvError).code}: ${(e as Error).message}`;
  }
  return "no error";
}

describe("NSM requests, byte for byte", () => {
  it("Attestation: a map of one variant whose fields are user_data, nonce, public_key in that order, null when absent", () => {
    const bytes = encodeAttestationRequest({
      userData: new Uint8Array([1, 2]),
      nonce: null,
      publicKey: null,
    });
    // a1 6b "Attestation" a3 69 "user_data" 42 0102 65 "nonce" f6 6a "public_key" f6
    expect(hex(bytes)).toBe(
      `a16b${text("Attestation")}a369${text("user_data")}42010265${text("nonce")}f66a${text("public_key")}f6`,
    );
  });

  it("DescribePCR {index} and the unit variant GetRandom as a bare text", () => {
    expect(hex(encodeDescribePcrRequest(2))).toBe(`a16b${text("DescribePCR")}a165${text("index")}02`);
    expect(hex(encodeDescribePcrRequest(300))).toBe(`a16b${text("DescribePCR")}a165${text("index")}19012c`);
    expect(hex(encodeGetRandomRequest())).toBe(`69${text("GetRandom")}`);
  });

  it("inputs over the NSM's limits are refused before they reach the device", async () => {
    expect(() =>
      encodeAttestationRequest({ userData: new Uint8Array(1025), nonce: null, publicKey: null }),
    ).toThrow(/user_data is 1025 bytes, more than 1024/);
    expect(() =>
      encodeAttestationRequest({ userData: null, nonce: null, publicKey: new Uint8Array(1025) }),
    ).toThrow(/public_key/);
    expect(() => encodeDescribePcrRequest(65536)).toThrow(/u16/);
  });

  it("responses: an NSM error is UNAVAILABLE naming it; an unknown variant or missing field is MALFORMED", async () => {
    const nsm = new TestDoubleNsm();
    expect(
      await failure(
        Promise.resolve().then(async () => decodeNsmResponse(await nsm.call(encodeDescribePcrRequest(17)))),
      ),
    ).toBe("UNAVAILABLE: the NSM refused: InvalidIndex");
    expect(() => decodeNsmResponse(new Uint8Array([0xa1, 0x63, 0x46, 0x6f, 0x6f, 0xf6]))).toThrow(
      /NSM response/,
    );
    expect((await nsmRandom(nsm)).length).toBe(256);
  });
});

describe("the Nitro platform on the test double of the NSM", () => {
  const pki = new TestDoubleNitroPki();
  const image = (name: string) => new Map([0, 1, 2, 3, 4, 8].map((i) => [i, testDoublePcr(name, i)]));
  const v1 = image("bkv image v1");
  const measurementOf = (pcrs: Map<number, Uint8Array>) =>
    nitroImageMeasurement(pcrs.get(0)!, pcrs.get(1)!, pcrs.get(2)!);
  const kms = new TestDoubleKms(pki.rootFingerprint, measurementOf(v1));

  it("its identity is an NSM document naming its own keys and its image, which the client's verifier accepts", async () => {
    const nsm = new TestDoubleNsm({ pki, pcrs: v1 });
    const p = await openNitroPlatform({ nsm, sealSecrets: kms });
    expect(p.measurement()).toEqual(measurementOf(v1));
    const a = decodeAttestation(await p.identity());
    expect(a.platform).toBe("aws-nitro");
    const verdict = verifyNitroMember(a, [pki.rootFingerprint]);
    expect(verdict.document.pcrs.get(0)).toEqual(v1.get(0));
    // What the platform asked the NSM: PCR0, 1, 2, then one attestation naming exactly its keys.
    const sent = nsm.requests.map(hex);
    expect(sent.slice(0, 3)).toEqual([0, 1, 2].map((i) => hex(encodeDescribePcrRequest(i))));
    expect(sent[3]).toBe(
      hex(encodeAttestationRequest({ userData: verdict.document.userData, nonce: null, publicKey: null })),
    );
    // The identity signs with the key the document names.
    const sig = await p.identitySign(utf8("hello"));
    expect(p.crypto.ed25519Verify(a.signKey, utf8("hello"), sig)).toBe(true);
  });

  it("sealing is bound to the image: the same image opens what it sealed, another image is refused its seal secret", async () => {
    const p = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }), sealSecrets: kms });
    const sealed = await p.seal(utf8("host storage"), utf8("aad"));
    const again = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }), sealSecrets: kms });
    expect(await again.unseal(sealed, utf8("aad"))).toEqual(utf8("host storage"));
    expect(await failure(again.unseal(sealed, utf8("other aad")))).toMatch(/^AUTHENTICATION: /);
    const v2 = image("bkv image v2 (modified)");
    expect(
      await failure(openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v2 }), sealSecrets: kms })),
    ).toBe("FORBIDDEN: the key policy releases this seal secret to another enclave image");
    // A document from another PKI (an operator's own "NSM") is not accepted by the key policy either.
    expect(
      await failure(openNitroPlatform({ nsm: new TestDoubleNsm({ pcrs: v1 }), sealSecrets: kms })),
    ).toMatch(/^ATTESTATION: the chain starts at .* not a pinned root/);
  });

  it("no NVRAM survives a restart: a new run has new keys, a new document and empty NVRAM (a new member)", async () => {
    const p = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }), sealSecrets: kms });
    await p.nvramWrite(utf8("fleet state"));
    expect(await p.nvramRead()).toEqual(utf8("fleet state"));
    const restarted = await openNitroPlatform({
      nsm: new TestDoubleNsm({ pki, pcrs: v1 }),
      sealSecrets: kms,
    });
    expect(await restarted.nvramRead()).toBeNull();
    const [a, b] = [decodeAttestation(await p.identity()), decodeAttestation(await restarted.identity())];
    expect(hex(a.signKey)).not.toBe(hex(b.signKey));
    expect(hex(a.agreeKey)).not.toBe(hex(b.agreeKey));
  });
});
