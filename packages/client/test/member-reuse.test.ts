/**
 * The member index behind "one HSM, one genesis" (the log's /add and `bkv monitor`): keys are
 * compared as the points they name, so a second encoding of a logged member's key is that member.
 */
import { groupReuse, MemberIndex, p256PointId, reusedKeysText } from "@bkv/client";
import { p256 } from "@noble/curves/nist.js";
import { describe, expect, it } from "vitest";
import { CANONICAL_Y3, NONCANONICAL_Y3 } from "./ed25519-points.js";

const agree = () => p256.getPublicKey(p256.utils.randomSecretKey(), false);

describe("MemberIndex", () => {
  it("finds a logged member's signing key under its second encoding", () => {
    const index = new MemberIndex<string>();
    index.add([{ signKey: CANONICAL_Y3, agreeKey: agree() }], "fleet X");
    const reused = index.reused([
      { signKey: new Uint8Array(32).fill(9), agreeKey: agree() },
      { signKey: NONCANONICAL_Y3, agreeKey: agree() },
    ]);
    expect(reused.map((r) => [r.member, r.key, r.earlier])).toEqual([[2, "sign", "fleet X"]]);
  });

  it("finds an agreement key whatever its P-256 encoding, and keeps the first fleet that held a key", () => {
    const secret = p256.utils.randomSecretKey();
    const [full, compressed] = [p256.getPublicKey(secret, false), p256.getPublicKey(secret, true)];
    expect(p256PointId(compressed)).toBe(p256PointId(full));
    const index = new MemberIndex<string>();
    index.add([{ signKey: CANONICAL_Y3, agreeKey: full }], "first");
    index.add([{ signKey: CANONICAL_Y3, agreeKey: full }], "second");
    const reused = index.reused([{ signKey: CANONICAL_Y3, agreeKey: compressed }]);
    expect(reused.map((r) => [r.key, r.earlier])).toEqual([
      ["sign", "first"],
      ["agree", "first"],
    ]);
    expect(groupReuse(reused)).toEqual([{ member: 1, keys: ["sign", "agree"], earlier: "first" }]);
    expect(reusedKeysText(["sign", "agree"])).toBe("signing and agreement keys");
    expect(index.reused([{ signKey: new Uint8Array(32).fill(9), agreeKey: agree() }])).toEqual([]);
  });
});
