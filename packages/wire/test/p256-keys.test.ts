/**
 * P-256 agreement keys are checked on the curve equation in pure code (the same in the HSM core,
 * Node and browsers); and the genesis-create frame carries where the fleet is published.
 */
import { createECDH } from "node:crypto";
import { decodeHostToHsm, encodeHostToHsm, p256PointProblem } from "@bkv/wire";
import { describe, expect, it } from "vitest";

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;

function be32(v: bigint): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

function point(x: bigint, y: bigint): Uint8Array {
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(be32(x), 1);
  out.set(be32(y), 33);
  return out;
}

function generated(): Uint8Array {
  const e = createECDH("prime256v1");
  e.generateKeys();
  return new Uint8Array(e.getPublicKey(null, "uncompressed"));
}

describe("P-256 points", () => {
  it("accepts keys the platform makes", () => {
    for (let i = 0; i < 20; i++) expect(p256PointProblem(generated())).toBeNull();
  });

  it("refuses a point off the curve, a coordinate not below p, other encodings and lengths", () => {
    const good = generated();
    const off = good.slice();
    off[64]! ^= 1;
    expect(p256PointProblem(off)).toContain("not a point on the P-256 curve");
    const x = BigInt(`0x${Buffer.from(good.subarray(1, 33)).toString("hex")}`);
    const y = BigInt(`0x${Buffer.from(good.subarray(33)).toString("hex")}`);
    if (y + P < 1n << 256n) expect(p256PointProblem(point(x, y + P))).toContain("non-canonical");
    expect(p256PointProblem(point(P, 0n))).toContain("non-canonical");
    expect(p256PointProblem(point(0n, 0n))).toContain("not a point");
    const compressed = new Uint8Array(33);
    compressed[0] = 0x02;
    expect(p256PointProblem(compressed)).toContain("65 bytes");
    const wrongTag = good.slice();
    wrongTag[0] = 0x06;
    expect(p256PointProblem(wrongTag)).toContain("uncompressed");
  });
});

describe("genesis-create frame", () => {
  it("carries the namespace, the epoch, the log key, the release key, the successor limit and the witness policy, and decodes to the same frame", () => {
    const m = {
      type: "genesis-create" as const,
      members: [new Uint8Array([1, 2, 3])],
      challenges: [new Uint8Array(32).fill(5)],
      guessLimit: 10,
      namespace: "bkv-dev",
      epoch: 4_000_000_000,
      logKey: new Uint8Array(32).fill(9),
      releaseKey: new Uint8Array(32).fill(8),
      maxSuccessorGuessLimit: 7,
      witnessPolicy: { witnesses: [{ name: "w.example/1", key: new Uint8Array(32).fill(7) }], threshold: 1 },
    };
    expect(decodeHostToHsm(encodeHostToHsm(m))).toEqual(m);
  });
});
