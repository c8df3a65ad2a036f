/**
 * The submitter's signed message for the log's POST /add: its exact bytes (domain, namespace,
 * epoch, both digests), that it differs from the log's own bundle message over the same fields,
 * and the strict Ed25519 check that refuses a signature over anything else, by another key, with
 * a non-canonical S or a small-order key. And the release entry of a releases namespace: canonical
 * bytes, and a signature that covers every field.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import {
  bundleSignedMessage,
  decodeSignedRelease,
  ed25519VerifyStrict,
  encodeSignedRelease,
  releaseSignedBytes,
  SUBMIT_DOMAIN,
  submitMessage,
  verifyRelease,
} from "../src/index.js";

const a = new Uint8Array(32).fill(0xaa);
const e = new Uint8Array(32).fill(0xee);

describe("bkv-log-submit/v1", () => {
  it("is the domain, a NUL, the length-prefixed namespace, the epoch and both digests", () => {
    const m = submitMessage("ns/x", 258, a, e);
    const expected = Buffer.concat([
      Buffer.from(SUBMIT_DOMAIN),
      Buffer.from([0, 0, 4]),
      Buffer.from("ns/x"),
      Buffer.from([0, 0, 1, 2]),
      Buffer.from(a),
      Buffer.from(e),
    ]);
    expect(Buffer.from(m).toString("hex")).toBe(expected.toString("hex"));
    expect(Buffer.from(m).includes(Buffer.from(bundleSignedMessage("ns/x", 258, a)))).toBe(false);
    expect(() => submitMessage("", 1, a, e)).toThrow();
    expect(() => submitMessage("ns", -1, a, e)).toThrow();
    expect(() => submitMessage("ns", 1, a, e.slice(1))).toThrow();
  });

  it("verifies strictly: the signed message only, by the key only, canonical only", () => {
    const seed = new Uint8Array(32).fill(7);
    const key = ed25519.getPublicKey(seed);
    const m = submitMessage("ns", 1, a, e);
    const sig = ed25519.sign(m, seed);
    expect(ed25519VerifyStrict(key, m, sig)).toBe(true);
    expect(ed25519VerifyStrict(key, submitMessage("ns", 2, a, e), sig)).toBe(false);
    expect(ed25519VerifyStrict(ed25519.getPublicKey(new Uint8Array(32).fill(8)), m, sig)).toBe(false);
    // S + L: the same signature to a lenient verifier, refused here.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
    s += L;
    const malleable = sig.slice();
    for (let i = 32; i < 64; i++) {
      malleable[i] = Number(s & 0xffn);
      s >>= 8n;
    }
    expect(ed25519VerifyStrict(key, m, malleable)).toBe(false);
    // A small-order key with R = identity and S = 0 "signs" everything for a lenient verifier.
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const forged = new Uint8Array(64);
    forged.set(identity);
    expect(ed25519VerifyStrict(identity, m, forged)).toBe(false);
  });
});

describe("bkv-release/v1", () => {
  const seed = new Uint8Array(32).fill(9);
  const r = {
    namespace: "rel",
    epoch: 4,
    measurement: new Uint8Array(32).fill(3),
    sourceRevision: "abc",
    buildRecipe: "npm run build",
    time: 1_700_000_000_000,
  };
  const signedRelease = () => ({ ...r, signature: ed25519.sign(releaseSignedBytes(r), seed) });

  it("round-trips canonically and verifies under the release key only", () => {
    const s = signedRelease();
    const b = encodeSignedRelease(s);
    expect(decodeSignedRelease(b)).toEqual(s);
    expect(verifyRelease(s, ed25519.getPublicKey(seed))).toBe(true);
    expect(verifyRelease(s, ed25519.getPublicKey(new Uint8Array(32).fill(8)))).toBe(false);
    expect(verifyRelease({ ...s, epoch: 5 }, ed25519.getPublicKey(seed))).toBe(false);
    expect(verifyRelease({ ...s, sourceRevision: "abd" }, ed25519.getPublicKey(seed))).toBe(false);
  });

  it("refuses trailing bytes, a truncated signature and another domain", () => {
    const b = encodeSignedRelease(signedRelease());
    expect(() => decodeSignedRelease(new Uint8Array([...b, 0]))).toThrow();
    expect(() => decodeSignedRelease(b.slice(0, -1))).toThrow();
    const other = b.slice();
    other[0]! ^= 1;
    expect(() => decodeSignedRelease(other)).toThrow(/domain/);
  });
});
