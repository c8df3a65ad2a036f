/**
 * The genesis statement v4 freezes, besides where the fleet is published, what the fleet accepts of
 * a successor: the release key and the highest successor guess limit (docs/migration.md §2). Only
 * v4 decodes; a statement whose successor limit is above its own guess limit (or 0) does not
 * decode (POLICY), whatever signatures it carries; wrong lengths and trailing bytes are MALFORMED.
 */
import {
  type Attestation,
  BkvError,
  decodeStatement,
  ErrorCode,
  encodeStatement,
  type GenesisStatement,
  successorLimitProblem,
  utf8,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

function member(i: number): Attestation {
  return {
    platform: "software",
    vendor: `vendor ${i}`,
    signKey: fill(32, 0x10 + i),
    agreeKey: new Uint8Array([0x04, ...fill(64, 0x20 + i)]),
    measurement: fill(32, 0xa0),
    properties: [],
    signature: fill(64, 0x30 + i),
  };
}

function statement(o: Partial<GenesisStatement> = {}): GenesisStatement {
  return {
    fleetId: fill(16, 0xf0),
    namespace: "example.org/bkv",
    epoch: 2,
    logKey: fill(32, 0x44),
    releaseKey: fill(32, 0x77),
    members: [member(1)],
    challenges: [fill(32, 1)],
    measurement: fill(32, 0xa0),
    policy: { guessLimit: 10, n: 1, quorum: 1 },
    maxSuccessorGuessLimit: 8,
    vaultPublicKey: fill(32, 0x55),
    fleetSigningKey: fill(32, 0x66),
    time: 1_767_225_600_000,
    ...o,
  };
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof BkvError) return e.code;
    throw e;
  }
  return "decoded";
}

/** Offset of the first occurrence of needle in hay. */
function offsetOf(hay: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= hay.length; i++)
    if (needle.every((x, j) => hay[i + j] === x)) return i;
  throw new Error("not found");
}

describe("genesis statement v4", () => {
  it("round-trips the release key and the highest successor guess limit", () => {
    const s = statement();
    const d = decodeStatement(encodeStatement(s));
    expect(d.releaseKey).toEqual(fill(32, 0x77));
    expect(d.maxSuccessorGuessLimit).toBe(8);
    expect(encodeStatement(d)).toEqual(encodeStatement(s));
  });

  it("a successor limit equal to the fleet's own decodes; above it or 0 is POLICY", () => {
    expect(
      decodeStatement(encodeStatement(statement({ maxSuccessorGuessLimit: 10 }))).maxSuccessorGuessLimit,
    ).toBe(10);
    expect(codeOf(() => decodeStatement(encodeStatement(statement({ maxSuccessorGuessLimit: 11 }))))).toBe(
      ErrorCode.Policy,
    );
    expect(codeOf(() => decodeStatement(encodeStatement(statement({ maxSuccessorGuessLimit: 0 }))))).toBe(
      ErrorCode.Policy,
    );
    expect(successorLimitProblem(1, 1)).toBeNull();
    expect(successorLimitProblem(2, 1)).toMatch(/above the fleet's own guess limit 1/);
    expect(successorLimitProblem(0, 1)).toMatch(/at least 1/);
    expect(successorLimitProblem(1.5, 3)).toMatch(/at least 1/);
  });

  it("refuses a v3 statement (the domain names the version), trailing bytes and a cut release key", () => {
    const b = encodeStatement(statement());
    const v3 = b.slice();
    v3.set(utf8("bkv-genesis-statement/v3"), 0);
    expect(codeOf(() => decodeStatement(v3))).toBe(ErrorCode.Malformed);
    expect(codeOf(() => decodeStatement(new Uint8Array([...b, 0])))).toBe(ErrorCode.Malformed);
    // Without the release key (a v3 layout under the v4 domain), the fields after the log key shift.
    const at = offsetOf(b, fill(32, 0x77));
    const noRelease = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 32)]);
    expect(codeOf(() => decodeStatement(noRelease))).toBe(ErrorCode.Malformed);
    for (let n = 0; n < b.length; n += 7)
      expect(codeOf(() => decodeStatement(b.subarray(0, n)))).toBe(ErrorCode.Malformed);
  });
});
