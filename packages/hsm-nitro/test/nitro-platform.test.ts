/**
 * The Nitro platform adapter, as far as this machine allows: the exact bytes of its requests to the
 * NSM (as the nsm-api's serde encoding writes them), its identity (an NSM document naming its keys
 * and image, verified by the client's verifier), and sealing, against the TEST DOUBLE of the NSM
 * (test-double-nsm.ts; not AWS, and it says so). The seal key is made fresh in each run from the
 * NSM's entropy and never leaves the platform: the attacks are a second run of the same image (a
 * restart, or the operator starting another enclave) opening what the first run sealed, two runs at
 * once sharing a key, and an NSM that gives no entropy. A restart is a new member with no NVRAM.
 */
import { nitroImageMeasurement, verifyNitroMember } from "@bkv/client";
import {
  decodeNsmResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeGetRandomRequest,
  nsmRandom,
  openNitroPlatform,
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

  it("its identity is an NSM document naming its own keys and its image, which the client's verifier accepts", async () => {
    const nsm = new TestDoubleNsm({ pki, pcrs: v1 });
    const p = await openNitroPlatform({ nsm });
    expect(p.measurement()).toEqual(measurementOf(v1));
    const a = decodeAttestation(await p.identity());
    expect(a.platform).toBe("aws-nitro");
    const verdict = verifyNitroMember(a, [pki.rootFingerprint]);
    expect(verdict.document.pcrs.get(0)).toEqual(v1.get(0));
    // What the platform asked the NSM: PCR0, 1, 2, one attestation naming exactly its keys, then
    // entropy for this run's seal secret.
    const sent = nsm.requests.map(hex);
    expect(sent.slice(0, 3)).toEqual([0, 1, 2].map((i) => hex(encodeDescribePcrRequest(i))));
    expect(sent[3]).toBe(
      hex(encodeAttestationRequest({ userData: verdict.document.userData, nonce: null, publicKey: null })),
    );
    expect(sent.slice(4)).toEqual([hex(encodeGetRandomRequest())]);
    // The identity signs with the key the document names.
    const sig = await p.identitySign(utf8("hello"));
    expect(p.crypto.ed25519Verify(a.signKey, utf8("hello"), sig)).toBe(true);
  });

  it("a run opens what it sealed, and nothing else: wrong aad, an altered blob, a short blob are refused", async () => {
    const p = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }) });
    const sealed = await p.seal(utf8("host storage"), utf8("aad"));
    expect(await p.unseal(sealed, utf8("aad"))).toEqual(utf8("host storage"));
    expect(await failure(p.unseal(sealed, utf8("other aad")))).toMatch(/^AUTHENTICATION: unseal: /);
    const altered = sealed.slice();
    altered[altered.length - 1]! ^= 1;
    expect(await failure(p.unseal(altered, utf8("aad")))).toMatch(/^AUTHENTICATION: unseal: /);
    expect(await failure(p.unseal(sealed.subarray(0, 27), utf8("aad")))).toBe(
      "MALFORMED: sealed blob too short",
    );
  });

  it("a second run of the SAME image on the SAME NSM cannot open what the first run sealed", async () => {
    // The operator keeps the host's sealed storage, restarts the enclave (or starts another one from
    // the same image on the same instance) and hands it the blob: the new run has a new seal key.
    const nsm = new TestDoubleNsm({ pki, pcrs: v1 });
    const first = await openNitroPlatform({ nsm });
    const sealed = await first.seal(utf8("genesis: OPRF seed, vault key, fleet key"), utf8("aad"));
    const second = await openNitroPlatform({ nsm });
    expect(second.measurement()).toEqual(first.measurement());
    let opened: Uint8Array | undefined;
    const outcome = await failure(
      second.unseal(sealed, utf8("aad")).then((b) => {
        opened = b;
      }),
    );
    expect(outcome).toMatch(/^AUTHENTICATION: unseal: the blob does not open under this HSM's seal key/);
    expect(opened).toBeUndefined();
    // The first run still opens it: the refusal is the key, not a broken blob.
    expect(await first.unseal(sealed, utf8("aad"))).toEqual(utf8("genesis: OPRF seed, vault key, fleet key"));
  });

  it("two platforms opened at once on one NSM do not share a seal key", async () => {
    const nsm = new TestDoubleNsm({ pki, pcrs: v1 });
    const [a, b] = await Promise.all([openNitroPlatform({ nsm }), openNitroPlatform({ nsm })]);
    const byA = await a.seal(utf8("a's record"), utf8("aad"));
    const byB = await b.seal(utf8("b's record"), utf8("aad"));
    expect(await failure(b.unseal(byA, utf8("aad")))).toMatch(/^AUTHENTICATION: unseal: /);
    expect(await failure(a.unseal(byB, utf8("aad")))).toMatch(/^AUTHENTICATION: unseal: /);
    expect(await a.unseal(byA, utf8("aad"))).toEqual(utf8("a's record"));
    expect(await b.unseal(byB, utf8("aad"))).toEqual(utf8("b's record"));
  });

  it("the NSM's entropy is required: an NSM that refuses GetRandom, or gives too little, stops the start", async () => {
    let asked = 0;
    const refusing = new TestDoubleNsm({
      pki,
      pcrs: v1,
      getRandom: () => {
        asked++;
        return "InternalError";
      },
    });
    expect(await failure(openNitroPlatform({ nsm: refusing }))).toBe(
      "UNAVAILABLE: the NSM refused: InternalError",
    );
    expect(asked).toBe(1);
    const stingy = new TestDoubleNsm({ pki, pcrs: v1, getRandom: () => new Uint8Array(16).fill(7) });
    expect(await failure(openNitroPlatform({ nsm: stingy }))).toBe(
      "MALFORMED: NSM: 16 bytes of entropy, fewer than the 32 the seal secret needs",
    );
  });

  it("the NSM alone does not decide the seal key: two runs given the same NSM bytes still get different keys", async () => {
    const fixed = new Uint8Array(256).fill(0x5a);
    const nsm = new TestDoubleNsm({ pki, pcrs: v1, getRandom: () => fixed.slice() });
    const [a, b] = [await openNitroPlatform({ nsm }), await openNitroPlatform({ nsm })];
    const sealed = await a.seal(utf8("record"), utf8("aad"));
    expect(await a.unseal(sealed, utf8("aad"))).toEqual(utf8("record"));
    expect(await failure(b.unseal(sealed, utf8("aad")))).toMatch(/^AUTHENTICATION: unseal: /);
  });

  it("no NVRAM survives a restart: a new run has new keys, a new document and empty NVRAM (a new member)", async () => {
    const p = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }) });
    await p.nvramWrite(utf8("fleet state"));
    expect(await p.nvramRead()).toEqual(utf8("fleet state"));
    const restarted = await openNitroPlatform({ nsm: new TestDoubleNsm({ pki, pcrs: v1 }) });
    expect(await restarted.nvramRead()).toBeNull();
    const [a, b] = [decodeAttestation(await p.identity()), decodeAttestation(await restarted.identity())];
    expect(hex(a.signKey)).not.toBe(hex(b.signKey));
    expect(hex(a.agreeKey)).not.toBe(hex(b.agreeKey));
  });
});
