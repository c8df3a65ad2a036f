/**
 * The old fleet's check of a successor (checkSuccessor, docs/migration.md §2 points 1 and 3, and the
 * release signature of point 2). The operator builds every "successor" here: it holds its own vendor
 * root and release key, signs with any member key it likes, and edits any field. Each forgery is
 * refused with a stable code and a message naming what failed; the genuine successor passes.
 */
import { checkSuccessor, type FrozenTerms, type SuccessorEvidence } from "@bkv/hsm-core";
import {
  attest,
  ed25519PublicKeyOf,
  ed25519SignWith,
  memoryPlatform,
  newMemoryHsm,
  newP256PrivateKey,
  newVendorRoot,
  p256Identity,
  TEST_VENDOR,
  type VendorRoot,
} from "@bkv/hsm-software";
import {
  BkvError,
  decodeAttestation,
  ErrorCode,
  encodeEvidence,
  encodeSignedRelease,
  encodeStatement,
  type GenesisStatement,
  quorumOf,
  type Release,
  releaseSignedBytes,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

const seed = (v: number) => new Uint8Array(32).fill(v);
const RELEASE_SEED = seed(0x52);
const LOG_KEY = ed25519PublicKeyOf(seed(0x42));
/** The successor's code (another build than the old fleet's). */
const NEW_CODE = new Uint8Array(32).fill(0xc2);

/** What the old fleet's genesis froze. */
const FROZEN: FrozenTerms = {
  namespace: "bkv-test",
  epoch: 1,
  logKey: LOG_KEY,
  releaseKey: ed25519PublicKeyOf(RELEASE_SEED),
  maxSuccessorGuessLimit: 5,
};

/** The old fleet's HSM: trusts TEST_VENDOR only. */
const platform = memoryPlatform(newMemoryHsm());

let counter = 1;
function member(root: VendorRoot = TEST_VENDOR, measurement = NEW_CODE) {
  const signSeed = seed(counter++);
  const attestation = attest(root, {
    platform: "software",
    vendor: "test vendor",
    signKey: ed25519PublicKeyOf(signSeed),
    agreeKey: p256Identity(newP256PrivateKey()).publicKey,
    measurement,
    properties: [],
  });
  return { signSeed, attestation };
}
type Member = ReturnType<typeof member>;

interface Forge {
  members?: Member[];
  /** Change the statement before the members sign it. */
  edit?: (st: GenesisStatement) => GenesisStatement;
  /** Change the signatures after. */
  signatures?: (sigs: Uint8Array[], statement: Uint8Array) => Uint8Array[];
  release?: Partial<Release>;
  releaseSeed?: Uint8Array;
}

function successor(o: Forge = {}): SuccessorEvidence {
  const ms = o.members ?? [member(), member(), member()];
  const n = ms.length;
  let st: GenesisStatement = {
    fleetId: new Uint8Array(16).fill(0xf2),
    namespace: "bkv-test",
    epoch: 2,
    logKey: LOG_KEY,
    releaseKey: ed25519PublicKeyOf(RELEASE_SEED),
    members: ms.map((m) => decodeAttestation(m.attestation)),
    challenges: ms.map((_, i) => seed(0x80 + i)),
    measurement: NEW_CODE,
    policy: { guessLimit: 5, n, quorum: quorumOf(n) },
    maxSuccessorGuessLimit: 5,
    vaultPublicKey: seed(0x55),
    fleetSigningKey: ed25519PublicKeyOf(seed(0x66)),
    time: 1_767_225_600_000,
  };
  if (o.edit) st = o.edit(st);
  const statement = encodeStatement(st);
  let signatures = ms.map((m) => ed25519SignWith(m.signSeed, statement));
  if (o.signatures) signatures = o.signatures(signatures, statement);
  const r: Release = {
    namespace: "bkv-test-releases",
    epoch: 2,
    measurement: NEW_CODE,
    sourceRevision: "0123456789abcdef0123456789abcdef01234567",
    buildRecipe: "npm ci && npm run build",
    time: 1_767_225_000_000,
    ...o.release,
  };
  const release = encodeSignedRelease({
    ...r,
    signature: ed25519SignWith(o.releaseSeed ?? RELEASE_SEED, releaseSignedBytes(r)),
  });
  return { evidence: encodeEvidence({ statement, signatures }), release };
}

function refusal(s: SuccessorEvidence, frozen: FrozenTerms = FROZEN): { code: string; message: string } {
  try {
    checkSuccessor(platform, frozen, s);
  } catch (e) {
    if (!(e instanceof BkvError)) throw e;
    return { code: e.code, message: e.message };
  }
  return { code: "accepted", message: "" };
}

function expectRefused(s: SuccessorEvidence, code: ErrorCode, words: string | RegExp, frozen = FROZEN) {
  const r = refusal(s, frozen);
  expect(r.code).toBe(code);
  expect(r.message).toMatch(/^successor refused: /);
  if (typeof words === "string") expect(r.message).toContain(words);
  else expect(r.message).toMatch(words);
}

describe("checkSuccessor: the genuine successor", () => {
  it("passes: members attested to a trusted root, every signature, next epoch, limit within the frozen maximum, code released under the frozen key", () => {
    const s = successor();
    const c = checkSuccessor(platform, FROZEN, s);
    expect(c.statement.epoch).toBe(2);
    expect(c.members).toHaveLength(3);
    expect(c.release.measurement).toEqual(NEW_CODE);
    // A lower guess limit and another N are allowed.
    const five = [member(), member(), member(), member(), member()];
    expect(
      refusal(
        successor({
          members: five,
          edit: (st) => ({ ...st, policy: { ...st.policy, guessLimit: 3 }, maxSuccessorGuessLimit: 3 }),
        }),
      ).code,
    ).toBe("accepted");
  });
});

describe("checkSuccessor: the operator's forged successors, each refused by name", () => {
  it("members attested by the operator's own vendor root (§2 point 1)", () => {
    const own = newVendorRoot();
    expectRefused(
      successor({ members: [member(), member(own), member()] }),
      ErrorCode.Attestation,
      "member 2",
    );
  });

  it("a member attesting other code than the successor's measurement", () => {
    expectRefused(
      successor({ members: [member(), member(TEST_VENDOR, new Uint8Array(32).fill(9)), member()] }),
      ErrorCode.Measurement,
      "member 2 runs other code",
    );
  });

  it("code released under the operator's own release key, not the frozen one (§2 point 2)", () => {
    expectRefused(
      successor({ releaseSeed: seed(0x99) }),
      ErrorCode.Measurement,
      "not released under the release key",
    );
  });

  it("a genuine release of other code than the successor runs", () => {
    expectRefused(
      successor({ release: { measurement: new Uint8Array(32).fill(7) } }),
      ErrorCode.Measurement,
      "the release is of code",
    );
  });

  it("a guess limit above the frozen maximum, though every member signed it (§2 point 3)", () => {
    expectRefused(
      successor({
        edit: (st) => ({ ...st, policy: { ...st.policy, guessLimit: 6 }, maxSuccessorGuessLimit: 6 }),
      }),
      ErrorCode.Policy,
      "guess limit 6 is above the 5",
    );
    // Its own statement lets its successors exceed its limit: the statement does not decode.
    expectRefused(
      successor({ edit: (st) => ({ ...st, maxSuccessorGuessLimit: 9 }) }),
      ErrorCode.Policy,
      "does not decode",
    );
  });

  it("another namespace, an epoch other than the next, another log", () => {
    expectRefused(
      successor({ edit: (st) => ({ ...st, namespace: "elsewhere" }) }),
      ErrorCode.Invalid,
      "namespace",
    );
    for (const epoch of [1, 3, 0])
      expectRefused(
        successor({ edit: (st) => ({ ...st, epoch }) }),
        ErrorCode.Invalid,
        `its epoch is ${epoch}, not 2`,
      );
    expectRefused(
      successor({ edit: (st) => ({ ...st, logKey: ed25519PublicKeyOf(seed(0x43)) }) }),
      ErrorCode.Invalid,
      "another log key",
    );
    // A fleet at the last epoch has no successor.
    expectRefused(successor({ edit: (st) => ({ ...st, epoch: 0 }) }), ErrorCode.Invalid, "not 4294967296", {
      ...FROZEN,
      epoch: 0xffffffff,
    });
  });

  it("a signature missing, by another key, or over other bytes", () => {
    expectRefused(
      successor({ signatures: (s) => s.slice(0, 2) }),
      ErrorCode.Signature,
      "2 signatures for 3 members",
    );
    expectRefused(
      successor({ signatures: (s, st) => [s[0]!, ed25519SignWith(seed(0x77), st), s[2]!] }),
      ErrorCode.Signature,
      "member 2's signature",
    );
    expectRefused(
      successor({ signatures: (s) => [s[0]!, s[1]!, ed25519SignWith(seed(3), new Uint8Array([1, 2, 3]))] }),
      ErrorCode.Signature,
      "member 3's signature",
    );
  });

  it("N and quorum that do not match the members, an even fleet, a repeated challenge", () => {
    expectRefused(
      successor({ edit: (st) => ({ ...st, policy: { ...st.policy, quorum: 1 } }) }),
      ErrorCode.Policy,
      "quorum=1",
    );
    expectRefused(successor({ members: [member(), member()] }), ErrorCode.Policy, "odd number of members");
    expectRefused(
      successor({
        edit: (st) => ({ ...st, challenges: [st.challenges[0]!, st.challenges[0]!, st.challenges[2]!] }),
      }),
      ErrorCode.GenesisChallenge,
      "member 2 repeats",
    );
  });

  it("a fleet signing key of small order", () => {
    const identity = new Uint8Array(32);
    identity[0] = 1;
    expectRefused(
      successor({ edit: (st) => ({ ...st, fleetSigningKey: identity }) }),
      ErrorCode.Invalid,
      "fleet signing key",
    );
  });

  it("bytes that do not decode: trailing bytes, a cut release, no release", () => {
    const s = successor();
    expectRefused(
      { ...s, evidence: new Uint8Array([...s.evidence, 0]) },
      ErrorCode.Malformed,
      "evidence does not decode",
    );
    expectRefused(
      { ...s, release: s.release.subarray(0, s.release.length - 1) },
      ErrorCode.Malformed,
      "release does not decode",
    );
    expectRefused({ ...s, release: new Uint8Array(0) }, ErrorCode.Malformed, "release does not decode");
  });
});
