/**
 * The genesis statement v5 freezes, besides where the fleet is published, what the fleet accepts of
 * a successor: the release key, the highest successor guess limit and the log's witness policy
 * (docs/migration.md §2). Only v5 decodes; a statement whose successor limit is above its own guess
 * limit (or 0) does not decode (POLICY), nor one whose witness policy cannot be frozen (INVALID),
 * whatever signatures it carries; wrong lengths and trailing bytes are MALFORMED.
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
  type WitnessPolicy,
  witnessPolicyProblem,
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

const W1 = { name: "witness.example/w1", key: fill(32, 0x57) };
const W2 = { name: "witness.example/w2", key: fill(32, 0x58) };
const POLICY: WitnessPolicy = { witnesses: [W1, W2], threshold: 2 };

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
    witnessPolicy: POLICY,
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

describe("genesis statement v5", () => {
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

  it("refuses a v4 or v3 statement (the domain names the version), trailing bytes and a cut release key", () => {
    const b = encodeStatement(statement());
    for (const old of ["bkv-genesis-statement/v4", "bkv-genesis-statement/v3"]) {
      const v = b.slice();
      v.set(utf8(old), 0);
      expect(codeOf(() => decodeStatement(v))).toBe(ErrorCode.Malformed);
    }
    expect(codeOf(() => decodeStatement(new Uint8Array([...b, 0])))).toBe(ErrorCode.Malformed);
    // Without the release key (a v3 layout under the v5 domain), the fields after the log key shift.
    const at = offsetOf(b, fill(32, 0x77));
    const noRelease = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 32)]);
    expect(codeOf(() => decodeStatement(noRelease))).toBe(ErrorCode.Malformed);
    for (let n = 0; n < b.length; n += 7)
      expect(codeOf(() => decodeStatement(b.subarray(0, n)))).toBe(ErrorCode.Malformed);
  });

  it("round-trips the witness policy: names, keys and threshold, in order", () => {
    const d = decodeStatement(encodeStatement(statement()));
    expect(d.witnessPolicy).toEqual(POLICY);
    const one = decodeStatement(
      encodeStatement(statement({ witnessPolicy: { witnesses: [W2], threshold: 1 } })),
    );
    expect(one.witnessPolicy).toEqual({ witnesses: [W2], threshold: 1 });
  });

  it("refuses (INVALID) threshold 0, above the key count, a key twice, a name twice, the log key as a witness, no witness", () => {
    const cases: [WitnessPolicy, RegExp][] = [
      [{ ...POLICY, threshold: 0 }, /threshold must be 1 to 2 .*not 0/],
      [{ ...POLICY, threshold: 3 }, /threshold must be 1 to 2 .*not 3/],
      [{ witnesses: [W1, { name: "witness.example/w1-again", key: W1.key }], threshold: 1 }, /named twice/],
      [{ witnesses: [W1, { name: W1.name, key: W2.key }], threshold: 1 }, /two witness keys are named/],
      [{ witnesses: [W1, { name: "the-log", key: fill(32, 0x44) }], threshold: 1 }, /the log's own key/],
      [{ witnesses: [], threshold: 0 }, /names 0 witnesses/],
      [{ witnesses: [{ name: "w", key: new Uint8Array(32) }], threshold: 1 }, /small order/],
      [{ witnesses: [{ name: "a+b", key: W1.key }], threshold: 1 }, /not a key name/],
    ];
    for (const [witnessPolicy, words] of cases) {
      const b = encodeStatement(statement({ witnessPolicy }));
      let err: unknown;
      try {
        decodeStatement(b);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BkvError);
      expect((err as BkvError).code).toBe(ErrorCode.Invalid);
      expect((err as BkvError).message).toMatch(words);
      expect(witnessPolicyProblem(witnessPolicy, fill(32, 0x44))).toMatch(words);
    }
    expect(witnessPolicyProblem(POLICY, fill(32, 0x44))).toBeNull();
  });

  it("refuses more witnesses than MAX_WITNESSES, a name longer than allowed and a cut witness key (MALFORMED)", () => {
    const many = Array.from({ length: 17 }, (_, i) => ({ name: `w${i}`, key: fill(32, 0x60 + i) }));
    expect(
      codeOf(() =>
        decodeStatement(encodeStatement(statement({ witnessPolicy: { witnesses: many, threshold: 1 } }))),
      ),
    ).toBe(ErrorCode.Malformed);
    const long = { name: "w".repeat(256), key: W1.key };
    expect(
      codeOf(() =>
        decodeStatement(encodeStatement(statement({ witnessPolicy: { witnesses: [long], threshold: 1 } }))),
      ),
    ).toBe(ErrorCode.Malformed);
    const b = encodeStatement(statement());
    const at = offsetOf(b, W2.key);
    // A statement that ends inside a witness key, or whose threshold is cut off.
    expect(codeOf(() => decodeStatement(b.subarray(0, at + 31)))).toBe(ErrorCode.Malformed);
    expect(codeOf(() => decodeStatement(b.subarray(0, at + 34)))).toBe(ErrorCode.Malformed);
  });
});
