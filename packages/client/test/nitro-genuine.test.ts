/**
 * Genuine AWS Nitro Enclaves attestation documents (public test fixtures of other projects, see
 * fixtures/nitro/README.md) verified against the genuine AWS Nitro root, and every mutation of
 * them refused: another root pinned, a changed PCR (measurement), changed user data or public key,
 * a changed or missing certificate, trailing bytes. The documents are judged at their own time
 * (their certificates expired long ago) and report it.
 */
import { readFileSync } from "node:fs";
import {
  AWS_NITRO_ROOT_DER,
  AWS_NITRO_ROOT_SHA256,
  documentImageMeasurement,
  type NitroDocument,
  nitroImageMeasurement,
  verifyNitroDocument,
  verifyNitroMember,
} from "@bkv/client";
import { TestDoubleNitroPki } from "@bkv/hsm-nitro";
import { type Attestation, BkvError, ErrorCode, fromHex, NITRO_PLATFORM, toHex } from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";

const fixture = (name: string) =>
  new Uint8Array(
    Buffer.from(readFileSync(new URL(`./fixtures/nitro/${name}`, import.meta.url), "utf8").trim(), "base64"),
  );
const AWS = [fromHex(AWS_NITRO_ROOT_SHA256)];
const SEPT_9 = fixture("eternis-example-2024-09-09.b64");
const SEPT_17 = fixture("eternis-lib-test-2024-09-17.b64");
/** A production-mode enclave's document (PCR0 is its image), and a debug-mode one of the same instance. */
const PRODUCTION = fixture("blocky-nitrite-2024-09-07.b64");
const DEBUG = fixture("blocky-nitrite-debug-2024-09-07.b64");
const GENUINE = [SEPT_9, SEPT_17, PRODUCTION, DEBUG];

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    return `${(e as BkvError).code}: ${(e as Error).message}`;
  }
  return "no error";
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The document with one byte of `field` (found in its bytes, once) flipped. */
function flipIn(doc: Uint8Array, field: Uint8Array, at = field.length - 1): Uint8Array {
  const i = indexOf(doc, field);
  expect(i).toBeGreaterThan(0);
  expect(indexOf(doc.subarray(i + 1), field)).toBe(-1);
  const out = doc.slice();
  out[i + at]! ^= 0x01;
  return out;
}

describe("genuine AWS Nitro attestation documents", () => {
  it("the pinned root is AWS's published certificate: its SHA-256 is the published fingerprint, and genuine documents carry it", () => {
    expect(toHex(sha256(AWS_NITRO_ROOT_DER))).toBe(AWS_NITRO_ROOT_SHA256);
    for (const d of GENUINE) expect(verifyNitroDocument(d, AWS).chain[0]!.der).toEqual(AWS_NITRO_ROOT_DER);
  });

  it("verify under the AWS root and attest exactly what they state: module, time, PCRs, user data, nonce, public key", () => {
    const a = verifyNitroDocument(SEPT_17, AWS);
    expect(a.moduleId).toBe("i-0bbf1bfe232b8c2ce-enc019201afdaee4f17");
    expect(new Date(a.timestamp).toISOString()).toBe("2024-09-17T20:47:10.288Z");
    // PCR3 as the upstream test pins it (IAM role); PCR0 zero: a debug-mode enclave.
    expect(toHex(a.pcrs.get(3)!)).toBe(
      toHex(
        new Uint8Array([
          103, 28, 161, 227, 40, 247, 80, 21, 178, 174, 238, 96, 99, 156, 197, 37, 43, 200, 53, 216, 187, 105,
          4, 68, 209, 248, 226, 191, 66, 96, 247, 61, 193, 183, 30, 7, 161, 74, 119, 12, 125, 11, 236, 172,
          110, 179, 181, 63,
        ]),
      ),
    );
    expect([...a.pcrs.keys()]).toEqual([...Array(16).keys()]);
    expect(a.pcrs.get(0)!.every((b) => b === 0)).toBe(true);
    expect(toHex(a.nonce!)).toBe("0000000000000000000000000000000000000001");
    expect(new TextDecoder().decode(a.publicKey!)).toBe("dummy");
    expect(a.userData!.length).toBe(68);
    expect(a.chain.map((c) => c.subject)).toEqual([
      "CN=aws.nitro-enclaves",
      "CN=651a12adde5982f3.us-east-1.aws.nitro-enclaves",
      "CN=c71a34b77bd47e92.zonal.us-east-1.aws.nitro-enclaves",
      "CN=i-0bbf1bfe232b8c2ce.us-east-1.aws.nitro-enclaves",
      "CN=i-0bbf1bfe232b8c2ce-enc019201afdaee4f17.us-east-1.aws",
    ]);
    const b = verifyNitroDocument(SEPT_9, AWS);
    expect(new Date(b.timestamp).toISOString()).toBe("2024-09-09T19:49:12.400Z");
    expect(b.moduleId).toBe("i-0bbf1bfe232b8c2ce-enc0191ba35c9d1b77a");
  });

  it("a production-mode document: its PCR0 is its image, and user data, nonce and public key of 1024 bytes each", () => {
    const d = verifyNitroDocument(PRODUCTION, AWS);
    expect(d.moduleId).toBe("i-0a22e5c5f24d22174-enc0191cceb4289903f");
    expect(new Date(d.timestamp).toISOString()).toBe("2024-09-07T14:37:39.545Z");
    expect(toHex(d.pcrs.get(0)!).slice(0, 24)).toBe("e72a46ca80a260fb044a1254");
    expect([d.userData!.length, d.nonce!.length, d.publicKey!.length]).toEqual([1024, 1024, 1024]);
    const debug = verifyNitroDocument(DEBUG, AWS);
    expect(debug.moduleId).toBe("i-0a22e5c5f24d22174-enc0191ccebaf8feaba");
    expect(debug.pcrs.get(0)!.every((b) => b === 0)).toBe(true);
  });

  it("are judged at their own time: the signing certificate expired long ago, the document still verifies and says when it was made", () => {
    for (const d of GENUINE) {
      const doc: NitroDocument = verifyNitroDocument(d, AWS);
      const leaf = doc.chain[doc.chain.length - 1]!;
      expect(leaf.notAfter).toBeLessThan(Date.now());
      expect(doc.timestamp).toBeGreaterThanOrEqual(leaf.notBefore);
      expect(doc.timestamp).toBeLessThanOrEqual(leaf.notAfter);
    }
  });

  it("the image measurement is the digest of what PCR0, PCR1 and PCR2 state", () => {
    const d = verifyNitroDocument(SEPT_9, AWS);
    expect(documentImageMeasurement(d)).toEqual(
      nitroImageMeasurement(d.pcrs.get(0)!, d.pcrs.get(1)!, d.pcrs.get(2)!),
    );
  });

  it("another root pinned: refused, naming the root the chain starts at", () => {
    const other = new TestDoubleNitroPki();
    for (const d of GENUINE) {
      expect(code(() => verifyNitroDocument(d, [other.rootFingerprint]))).toMatch(
        /^ATTESTATION: the chain starts at CN=aws.nitro-enclaves, which is not a pinned root/,
      );
      expect(code(() => verifyNitroDocument(d, []))).toMatch(/^ATTESTATION: .*not a pinned root/);
    }
  });

  it("a changed measurement (PCR0 of the production document, PCR3, PCR4), user data, nonce or public key breaks the COSE signature", () => {
    const d = verifyNitroDocument(SEPT_17, AWS);
    // The nonce (19 zeros and a 1) also occurs inside the user data: find it after its key and header.
    const nonceField = new Uint8Array([0x65, ...new TextEncoder().encode("nonce"), 0x54, ...d.nonce!]);
    const p = verifyNitroDocument(PRODUCTION, AWS);
    const mutants = [
      flipIn(PRODUCTION, p.pcrs.get(0)!, 5),
      // The same 1024 bytes may recur in nonce and public key: find user_data after its key and header.
      flipIn(
        PRODUCTION,
        new Uint8Array([
          0x69,
          ...new TextEncoder().encode("user_data"),
          0x59,
          0x04,
          0x00,
          ...p.userData!.subarray(0, 16),
        ]),
      ),
      flipIn(SEPT_17, d.pcrs.get(3)!),
      flipIn(SEPT_17, d.pcrs.get(4)!, 0),
      flipIn(SEPT_17, d.userData!),
      flipIn(SEPT_17, nonceField),
      flipIn(SEPT_17, d.publicKey!),
    ];
    for (const m of mutants)
      expect(code(() => verifyNitroDocument(m, AWS))).toBe(
        "ATTESTATION: Nitro attestation document: the COSE signature does not verify",
      );
  });

  it("a changed certificate in the chain, or one left out, is refused", () => {
    const d = verifyNitroDocument(SEPT_9, AWS);
    const intermediate = d.chain[2]!.der;
    // The last byte of its signature.
    expect(code(() => verifyNitroDocument(flipIn(SEPT_9, intermediate), AWS))).toMatch(
      /^ATTESTATION: (certificate 2 .* is not signed by certificate 1|cabundle certificate 2 is not)/,
    );
    // A byte of its public key: the next certificate no longer verifies under it.
    const key = d.chain[2]!.publicKey;
    expect(code(() => verifyNitroDocument(flipIn(SEPT_9, key, 40), AWS))).toMatch(/^ATTESTATION: /);
  });

  it("trailing bytes, a truncated document and the upstream's own invalid document are refused", () => {
    const long = new Uint8Array([...SEPT_9, 0]);
    expect(code(() => verifyNitroDocument(long, AWS))).toMatch(
      /^MALFORMED: Nitro attestation document: the document is not strict CBOR/,
    );
    expect(code(() => verifyNitroDocument(SEPT_9.subarray(0, SEPT_9.length - 1), AWS))).toMatch(
      /^MALFORMED: /,
    );
    expect(code(() => verifyNitroDocument(fixture("eternis-invalid.b64"), AWS))).toBe(
      "ATTESTATION: Nitro attestation document: the COSE signature does not verify",
    );
  });

  it("a genuine document that does not name the member's keys fails by name (ATTESTATION_KEYS)", () => {
    const d = verifyNitroDocument(PRODUCTION, AWS);
    const a: Attestation = {
      platform: NITRO_PLATFORM,
      vendor: "AWS Nitro Enclaves",
      signKey: new Uint8Array(32).fill(7),
      agreeKey: new Uint8Array([4, ...new Uint8Array(64).fill(9)]),
      measurement: documentImageMeasurement(d),
      properties: [],
      signature: new Uint8Array(0),
      nitroDocument: PRODUCTION,
    };
    let err: unknown;
    try {
      verifyNitroMember(a, AWS);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).code).toBe(ErrorCode.AttestationKeys);
    expect((err as Error).message).toMatch(
      /i-0a22e5c5f24d22174-enc0191cceb4289903f does not name this member's keys/,
    );
  });

  it("a genuine document of a debug-mode enclave never counts for a member (MEASUREMENT), whatever it names", () => {
    for (const doc of [DEBUG, SEPT_9, SEPT_17]) {
      const d = verifyNitroDocument(doc, AWS);
      const a: Attestation = {
        platform: NITRO_PLATFORM,
        vendor: "AWS Nitro Enclaves",
        signKey: new Uint8Array(32).fill(7),
        agreeKey: new Uint8Array([4, ...new Uint8Array(64).fill(9)]),
        measurement: documentImageMeasurement(d),
        properties: [],
        signature: new Uint8Array(0),
        nitroDocument: doc,
      };
      let err: unknown;
      try {
        verifyNitroMember(a, AWS);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BkvError);
      expect((err as BkvError).code).toBe(ErrorCode.Measurement);
      expect((err as Error).message).toMatch(/debug-mode enclave \(PCR0 is zero\)/);
    }
  });
});
