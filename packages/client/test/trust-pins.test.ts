/**
 * Pins are small and explicit (issue 11, items 5 and 8): every field is required (missing is an
 * error, never "accept"); one witness key pinned twice (under one name or two) or one name for two
 * keys is refused, so no key counts twice toward the threshold; vendor roots and keys are strict.
 */
import { parseTrustPins } from "@bkv/client";
import {
  formatVerifierKey,
  generateSignerKey,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
} from "@bkv/tlog";
import { ErrorCode, isBkvError, toHex } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { vendorRoot, world } from "./bundle-world.js";
import { IDENTITY } from "./ed25519-points.js";

function refusal(v: unknown): string {
  try {
    parseTrustPins(v);
    return "accepted";
  } catch (e) {
    expect(isBkvError(e, ErrorCode.Invalid)).toBe(true);
    return (e as Error).message;
  }
}

describe("trust pins", () => {
  const { pins, w1 } = world();

  it("complete pins parse, with only the known fields", () => {
    expect(parseTrustPins({ ...pins, extra: 1 })).toEqual(pins);
    expect(parseTrustPins({ ...pins, allowTestRoots: true, allowSmallFleet: false })).toEqual({
      ...pins,
      allowTestRoots: true,
    });
  });

  it("anything missing is an error", () => {
    for (const k of Object.keys(pins)) {
      const { [k as keyof typeof pins]: _gone, ...rest } = pins;
      expect(refusal(rest)).toContain(`missing ${k}`);
    }
    expect(refusal({ ...pins, vendorRoots: [] })).toContain("vendorRoots");
    expect(refusal({ ...pins, measurements: [] })).toContain("measurements");
    expect(refusal(null)).toContain("not an object");
  });

  it("one witness key pinned twice, under one name or two, or one name for two keys", () => {
    expect(refusal({ ...pins, witnessKeys: [w1.vkey, w1.vkey] })).toContain("pinned twice");
    const k = parseVerifierKey(w1.vkey);
    const renamed = formatVerifierKey({
      name: "example.test/w1-again",
      type: SIG_COSIGNATURE_V1,
      publicKey: k.publicKey,
    });
    expect(refusal({ ...pins, witnessKeys: [w1.vkey, renamed], witnessThreshold: 2 })).toContain(
      "pinned twice",
    );
    const sameName = generateSignerKey("example.test/w1", SIG_COSIGNATURE_V1).vkey;
    expect(refusal({ ...pins, witnessKeys: [w1.vkey, sameName] })).toContain("under one name");
  });

  it("the log's own key pinned as a witness: the log operator would witness its own checkpoints", () => {
    const log = parseVerifierKey(pins.logKey);
    const selfWitness = formatVerifierKey({
      name: "example.test/not-a-witness",
      type: SIG_COSIGNATURE_V1,
      publicKey: log.publicKey,
    });
    expect(refusal({ ...pins, witnessKeys: [selfWitness], witnessThreshold: 1 })).toContain(
      "the log's own key",
    );
    expect(refusal({ ...pins, witnessKeys: [w1.vkey, selfWitness], witnessThreshold: 1 })).toContain(
      "the log's own key",
    );
  });

  it("keys of the wrong type or of small order, and thresholds out of range", () => {
    expect(
      refusal({ ...pins, witnessKeys: [generateSignerKey("x.test/w").vkey], witnessThreshold: 1 }),
    ).toContain("cosignature/v1");
    const smallLog = formatVerifierKey({ name: "example.test/log", type: SIG_ED25519, publicKey: IDENTITY });
    expect(refusal({ ...pins, logKey: smallLog })).toContain("small order");
    expect(refusal({ ...pins, witnessThreshold: 3 })).toContain("witnessThreshold");
    expect(refusal({ ...pins, witnessThreshold: 0 })).toContain("witnessThreshold");
  });

  it("vendor roots are {name, key, test}, strict keys, each once; measurements are hex; a guess limit is given", () => {
    const r = vendorRoot("second");
    expect(parseTrustPins({ ...pins, vendorRoots: [...pins.vendorRoots, r.pin] }).vendorRoots).toHaveLength(
      2,
    );
    expect(refusal({ ...pins, vendorRoots: [{ name: "x", key: toHex(r.publicKey) }] })).toContain(
      "test: boolean",
    );
    expect(refusal({ ...pins, vendorRoots: [{ name: "x", key: toHex(IDENTITY), test: false }] })).toContain(
      "small order",
    );
    expect(refusal({ ...pins, vendorRoots: [r.pin, { ...r.pin, name: "again" }] })).toContain("pinned twice");
    expect(refusal({ ...pins, vendorRoots: [r.pin, { ...vendorRoot().pin, name: r.pin.name }] })).toContain(
      "named",
    );
    expect(refusal({ ...pins, measurements: ["AB".repeat(32)] })).toContain("measurements");
    expect(refusal({ ...pins, maxGuessLimit: 0 })).toContain("maxGuessLimit");
    expect(refusal({ ...pins, maxGuessLimit: 2.5 })).toContain("maxGuessLimit");
    expect(refusal({ ...pins, allowTestRoots: "yes" })).toContain("allowTestRoots");
  });
});
