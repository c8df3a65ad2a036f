/**
 * wire's text codecs: hex and base64url (from @scure/base, strict) and UTF-8 (fatal, BOM kept).
 * Every refusal is MALFORMED; every accepted text decodes to bytes that encode back to it.
 */
import {
  attestationSignedBytes,
  decodeAttestation,
  ErrorCode,
  encodeAttestation,
  fromBase64Url,
  fromHex,
  fromUtf8,
  isBkvError,
  toBase64Url,
  toHex,
  utf8,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

function malformed(f: () => unknown): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(isBkvError(caught) && caught.code === ErrorCode.Malformed, String(caught)).toBe(true);
}

const bytes = (...b: number[]) => new Uint8Array(b);

describe("hex", () => {
  it("encodes lowercase and round-trips every byte value", () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const s = toHex(all);
    expect(s).toMatch(/^[0-9a-f]{512}$/);
    expect(s.slice(0, 8)).toBe("00010203");
    expect(fromHex(s)).toEqual(all);
    expect(fromHex("ABcd")).toEqual(bytes(0xab, 0xcd));
    expect(fromHex("")).toEqual(new Uint8Array(0));
  });

  it("refuses odd lengths, other characters, prefixes and whitespace", () => {
    for (const s of ["a", "abc", "0g", "0x00", " 00", "00 ", "00\n", "+1", "-1", "é0"])
      malformed(() => fromHex(s));
  });
});

describe("base64url", () => {
  it("matches RFC 4648 §10 test vectors (unpadded, url alphabet)", () => {
    const cases: [string, string][] = [
      ["", ""],
      ["f", "Zg"],
      ["fo", "Zm8"],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg"],
      ["fooba", "Zm9vYmE"],
      ["foobar", "Zm9vYmFy"],
    ];
    for (const [plain, text] of cases) {
      expect(toBase64Url(utf8(plain))).toBe(text);
      expect(fromBase64Url(text)).toEqual(utf8(plain));
    }
    expect(toBase64Url(bytes(0xfb, 0xff))).toBe("-_8");
    expect(fromBase64Url("-_8")).toEqual(bytes(0xfb, 0xff));
  });

  it("refuses padding, the standard alphabet, impossible lengths, non-canonical bits, whitespace", () => {
    for (const s of ["Zg==", "Zm8=", "+/8", "Z", "Zm9vY", "Zh", "Zm9", "Zm 9v", "Zm9v\n", "Zm9v!"]) {
      malformed(() => fromBase64Url(s));
    }
  });
});

describe("UTF-8", () => {
  it("refuses invalid UTF-8 (no replacement characters)", () => {
    for (const b of [
      bytes(0xff),
      bytes(0xc3),
      bytes(0xed, 0xa0, 0x80),
      bytes(0xc0, 0xaf),
      bytes(0x61, 0x80),
    ]) {
      malformed(() => fromUtf8(b));
    }
  });

  it("keeps a leading byte order mark, so decoding then encoding gives the same bytes", () => {
    const withBom = bytes(0xef, 0xbb, 0xbf, 0x73, 0x6f, 0x66, 0x74);
    const s = fromUtf8(withBom);
    expect(s).toBe("\uFEFFsoft");
    expect(s).not.toBe("soft");
    expect(utf8(s)).toEqual(withBom);
  });

  it("an attestation whose platform starts with a BOM decodes to a platform that is not 'software'", () => {
    const a = {
      platform: "\uFEFFsoftware",
      vendor: "test vendor",
      signKey: new Uint8Array(32).fill(1),
      agreeKey: new Uint8Array(65).fill(4),
      measurement: new Uint8Array(32).fill(2),
      properties: ["p"],
      signature: new Uint8Array(64).fill(3),
    };
    const enc = encodeAttestation(a);
    const dec = decodeAttestation(enc);
    expect(dec.platform).not.toBe("software");
    expect(encodeAttestation(dec)).toEqual(enc);
    expect(attestationSignedBytes(dec)).toEqual(attestationSignedBytes(a));
  });
});
