/**
 * The one verifier: strict Ed25519 and validated P-256 points, the same in Node and browsers. A
 * small-order public key (the identity point) "verifies" R = identity, S = 0 over any message under
 * node:crypto; a non-canonical key is a second encoding of a real key; both are refused here.
 */
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { ed25519PointId, p256PointProblem, strictEd25519Verify, strictNoteVerifier } from "@bkv/client";
import { formatVerifierKey, generateSignerKey, parseVerifierKey, SIG_ED25519 } from "@bkv/tlog";
import { utf8 } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { describe, expect, it } from "vitest";
import { CANONICAL_Y3, FORGED, IDENTITY, le, NONCANONICAL_Y3 } from "./ed25519-points.js";

const spki = (raw: Uint8Array) =>
  createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(raw)]),
    format: "der",
    type: "spki",
  });

describe("strict Ed25519", () => {
  it("refuses the small-order forgery that node:crypto accepts", () => {
    const msg = utf8("anything at all");
    // What `bkv audit` used to rely on: OpenSSL accepts it.
    expect(nodeVerify(null, msg, spki(IDENTITY), FORGED)).toBe(true);
    expect(strictEd25519Verify(IDENTITY, msg, FORGED)).toBe(false);
  });

  it("refuses a non-canonical key (a second encoding of a real point), and knows it is the same point", () => {
    expect(ed25519PointId(NONCANONICAL_Y3)).toBe(ed25519PointId(CANONICAL_Y3));
    expect(ed25519PointId(NONCANONICAL_Y3)).not.toBeNull();
    // Nobody knows the private key of y = 3; the check that matters is that the key is refused before verifying.
    const seed = new Uint8Array(32).fill(1);
    const msg = utf8("m");
    const sig = ed25519.sign(msg, seed);
    expect(strictEd25519Verify(ed25519.getPublicKey(seed), msg, sig)).toBe(true);
    expect(strictEd25519Verify(NONCANONICAL_Y3, msg, sig)).toBe(false);
  });

  it("refuses a signature with S not below the group order (malleability) and wrong sizes", () => {
    const seed = new Uint8Array(32).fill(2);
    const pub = ed25519.getPublicKey(seed);
    const msg = utf8("m");
    const sig = ed25519.sign(msg, seed);
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
    const malleable = new Uint8Array([...sig.subarray(0, 32), ...le(s + L)]);
    expect(strictEd25519Verify(pub, msg, malleable)).toBe(false);
    expect(strictEd25519Verify(pub, msg, sig.subarray(0, 63))).toBe(false);
    expect(strictEd25519Verify(pub.subarray(0, 31), msg, sig)).toBe(false);
  });

  it("note verifiers (log checkpoints, witness cosignatures) refuse a small-order pinned key", () => {
    const good = generateSignerKey("example.test/log");
    expect(() => strictNoteVerifier(good.vkey)).not.toThrow();
    const bad = formatVerifierKey({ name: "example.test/log", type: SIG_ED25519, publicKey: IDENTITY });
    expect(() => strictNoteVerifier(bad)).toThrow(/small order/);
    expect(parseVerifierKey(bad).publicKey).toEqual(IDENTITY);
  });
});

describe("P-256 agree keys", () => {
  it("accepts a real uncompressed point and refuses the rest", () => {
    const pub = p256.getPublicKey(p256.utils.randomSecretKey(), false);
    expect(p256PointProblem(pub)).toBeNull();
    const off = pub.slice();
    off[64] = off[64]! ^ 1;
    expect(p256PointProblem(off)).toMatch(/not a point/);
    expect(p256PointProblem(new Uint8Array([4, ...new Uint8Array(64)]))).not.toBeNull();
    expect(p256PointProblem(p256.getPublicKey(p256.utils.randomSecretKey(), true))).toMatch(/65 bytes/);
  });
});
