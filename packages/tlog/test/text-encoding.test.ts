/** tlog's text encodings: strict standard base64 (@scure/base) and decimal integers. */
import { describe, expect, it } from "vitest";
import { fromBase64, parseDecimal, toBase64 } from "../src/encoding.js";

const te = new TextEncoder();

describe("base64 (RFC 4648 §4, padded)", () => {
  it("matches RFC 4648 §10 test vectors", () => {
    const cases: [string, string][] = [
      ["", ""],
      ["f", "Zg=="],
      ["fo", "Zm8="],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg=="],
      ["fooba", "Zm9vYmE="],
      ["foobar", "Zm9vYmFy"],
    ];
    for (const [plain, text] of cases) {
      expect(toBase64(te.encode(plain))).toBe(text);
      expect(fromBase64(text)).toEqual(te.encode(plain));
    }
    expect(toBase64(new Uint8Array([0xfb, 0xff]))).toBe("+/8=");
  });

  it("round-trips every length up to 40 and every byte value", () => {
    for (let n = 0; n <= 40; n++) {
      const b = new Uint8Array(n).map((_, i) => (i * 97 + n) & 0xff);
      expect(fromBase64(toBase64(b))).toEqual(b);
    }
    const all = new Uint8Array(256).map((_, i) => i);
    expect(fromBase64(toBase64(all))).toEqual(all);
  });

  it("refuses missing or extra padding, padding inside, url alphabet, non-canonical bits, whitespace", () => {
    for (const s of [
      "Zg",
      "Zg=",
      "Zg===",
      "Zm8",
      "Z===",
      "====",
      "Zg==Zg==",
      "Zm=8",
      "-_8=",
      "Zh==",
      "Zm9=",
      " Zm9v",
      "Zm9v\n",
      "Zm 9v",
      "Zm9v!",
    ]) {
      expect(fromBase64(s), s).toBeUndefined();
    }
  });
});

describe("decimal", () => {
  it("accepts canonical non-negative safe integers only", () => {
    expect(parseDecimal("0")).toBe(0);
    expect(parseDecimal("9007199254740991")).toBe(9007199254740991);
    for (const s of [
      "",
      "00",
      "01",
      "-1",
      "+1",
      "1.0",
      "1e3",
      " 1",
      "9007199254740992",
      "99999999999999999",
    ]) {
      expect(parseDecimal(s), s).toBeUndefined();
    }
  });
});
