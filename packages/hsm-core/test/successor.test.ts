/**
 * The old fleet's check of a successor (checkSuccessor, docs/migration.md §2 points 1 to 4). The
 * operator builds every "successor" here: it holds its own vendor root, release key, log key and
 * witness keys, signs with any member key it likes, edits any field, and decides what its copy of
 * the log holds. The log is a real RFC 9162 tree (@bkv/tlog's MerkleTree, what the log service
 * runs) with a C2SP checkpoint signed and cosigned as the log and the witnesses do. Each forgery is
 * refused with a stable code and a message naming what failed; the genuine successor passes.
 */
import {
  checkSuccessor,
  decodeRaftEntry,
  encodeRaftEntry,
  type FrozenTerms,
  type Genesis,
  type SuccessorEvidence,
  type WitnessPolicy,
} from "@bkv/hsm-core";
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
  cosign,
  encodeLogEntry,
  evidenceDigest,
  formatCheckpoint,
  formatNote,
  keyId,
  type LogEntry,
  leafHash,
  MerkleTree,
  type NoteSignature,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
} from "@bkv/tlog";
import {
  artifactFromStatement,
  BkvError,
  decodeAttestation,
  ErrorCode,
  encodeArtifact,
  encodeEvidence,
  encodeSignedRelease,
  encodeStatement,
  type GenesisStatement,
  quorumOf,
  type Release,
  releaseSignedBytes,
  utf8,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

const seed = (v: number) => new Uint8Array(32).fill(v);
const RELEASE_SEED = seed(0x52);
const LOG_KEY = ed25519PublicKeyOf(seed(0x42));
/** The successor's code (another build than the old fleet's). */
const NEW_CODE = new Uint8Array(32).fill(0xc2);

const LOG_SEED = seed(0x42);
const LOG_NAME = "log.bkv.test";
const WITNESS_SEEDS = [seed(0xa1), seed(0xa2), seed(0xa3)];
const WITNESS_POLICY: WitnessPolicy = {
  witnesses: WITNESS_SEEDS.map((s, i) => ({ name: `witness-${i + 1}.test`, key: ed25519PublicKeyOf(s) })),
  threshold: 2,
};

/** What the old fleet's genesis froze (genesis statement v5: the witness policy with the rest). */
const FROZEN: FrozenTerms = {
  namespace: "bkv-test",
  epoch: 1,
  logKey: LOG_KEY,
  releaseKey: ed25519PublicKeyOf(RELEASE_SEED),
  maxSuccessorGuessLimit: 5,
  witnessPolicy: WITNESS_POLICY,
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
  log?: LogForge;
}

/** What the operator's copy of the log holds and how its checkpoint is signed. */
interface LogForge {
  /** The successor's entry as logged (default: the real one); undefined: not logged at all. */
  entry?: (real: LogEntry) => LogEntry | undefined;
  /** Log the release entry (default true). */
  logRelease?: boolean;
  /** The key and name the checkpoint is signed with (default: the frozen log key). */
  logSeed?: Uint8Array;
  /** Which witnesses cosign (indexes into WITNESS_SEEDS; default the first two), or own keys. */
  cosigners?: { name: string; seed: Uint8Array }[];
  /** Entries appended after the successor's (the checkpoint covers them). */
  after?: number;
  /** Change the checkpoint text after it is signed. */
  text?: (t: string) => string;
}

const witness = (i: number) => ({ name: WITNESS_POLICY.witnesses[i]!.name, seed: WITNESS_SEEDS[i]! });

/** Another deployment's entry: what fills the log around the successor's. */
function filler(i: number): Uint8Array {
  return encodeLogEntry({
    namespace: `other-${i}`,
    epoch: 1,
    artifact: new Uint8Array([i]),
    evidenceDigest: evidenceDigest(new Uint8Array([i])),
  });
}

/** A checkpoint note of the tree at its size, signed by the log key and the cosigners. */
function checkpointNote(tree: MerkleTree, o: LogForge): Uint8Array {
  const text = formatCheckpoint({ origin: LOG_NAME, size: tree.size, root: tree.root(), extensions: [] });
  const bytes = utf8(text);
  const logSeed = o.logSeed ?? LOG_SEED;
  const signatures: NoteSignature[] = [
    {
      name: LOG_NAME,
      keyId: keyId(LOG_NAME, SIG_ED25519, ed25519PublicKeyOf(logSeed)),
      signature: ed25519SignWith(logSeed, bytes),
    },
  ];
  for (const w of o.cosigners ?? [witness(0), witness(1)])
    signatures.push({
      name: w.name,
      keyId: keyId(w.name, SIG_COSIGNATURE_V1, ed25519PublicKeyOf(w.seed)),
      signature: cosign(1_767_300_000, bytes, (m) => ed25519SignWith(w.seed, m)),
    });
  return utf8(formatNote({ text: o.text ? o.text(text) : text, signatures }));
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
    witnessPolicy: WITNESS_POLICY,
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
  const evidence = encodeEvidence({ statement, signatures });
  const artifact = encodeArtifact(
    artifactFromStatement(st, { notBefore: 1_767_225_600_000, notAfter: 1_800_000_000_000 }),
  );
  // The log: other deployments' entries, the release, more entries, the successor, more entries.
  const lo = o.log ?? {};
  const tree = new MerkleTree();
  for (let i = 0; i < 5; i++) tree.append(leafHash(filler(i)));
  const releaseEntry = {
    namespace: r.namespace,
    epoch: r.epoch,
    artifact: release,
    evidenceDigest: evidenceDigest(new Uint8Array(0)),
  };
  const releaseIndex =
    lo.logRelease === false
      ? tree.append(leafHash(filler(99)))
      : tree.append(leafHash(encodeLogEntry(releaseEntry)));
  for (let i = 5; i < 8; i++) tree.append(leafHash(filler(i)));
  const real: LogEntry = {
    namespace: st.namespace,
    epoch: st.epoch,
    artifact,
    evidenceDigest: evidenceDigest(evidence),
  };
  const logged = lo.entry ? lo.entry(real) : real;
  const entryIndex = tree.append(leafHash(logged === undefined ? filler(98) : encodeLogEntry(logged)));
  for (let i = 0; i < (lo.after ?? 2); i++) tree.append(leafHash(filler(10 + i)));
  return {
    evidence,
    release,
    artifact,
    checkpoint: checkpointNote(tree, lo),
    entryInclusion: { index: entryIndex, proof: tree.inclusionProof(entryIndex) },
    releaseInclusion: { index: releaseIndex, proof: tree.inclusionProof(releaseIndex) },
  };
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

describe("checkSuccessor: the successor's log entry and its release in the log (§2 points 2 and 4)", () => {
  it("the genuine successor is found in the checkpoint; the digest it returns is its evidence's", () => {
    const s = successor();
    const c = checkSuccessor(platform, FROZEN, s);
    expect(c.evidenceDigest).toEqual(evidenceDigest(s.evidence));
    expect(c.checkpoint).toMatchObject({ origin: LOG_NAME, size: 5 + 1 + 3 + 1 + 2 });
    // The third witness instead of the second is as good: any two of the three.
    expect(refusal(successor({ log: { cosigners: [witness(2), witness(0)] } })).code).toBe("accepted");
  });

  it("a checkpoint signed by the operator's own log key, under the log's name", () => {
    expectRefused(
      successor({ log: { logSeed: seed(0x99) } }),
      ErrorCode.BundleCheckpoint,
      "not signed by the log key this fleet froze",
    );
  });

  it("a checkpoint not witnessed: no cosignature, one, one twice, or the operator's own witness under a witness's name", () => {
    expectRefused(
      successor({ log: { cosigners: [] } }),
      ErrorCode.BundleWitnesses,
      "0 witness cosignatures, 2 required",
    );
    expectRefused(
      successor({ log: { cosigners: [witness(1)] } }),
      ErrorCode.BundleWitnesses,
      "1 witness cosignatures",
    );
    expectRefused(
      successor({ log: { cosigners: [witness(1), witness(1)] } }),
      ErrorCode.BundleWitnesses,
      "1 witness cosignatures",
    );
    expectRefused(
      successor({ log: { cosigners: [witness(0), { name: witness(1).name, seed: seed(0x98) }] } }),
      ErrorCode.BundleWitnesses,
      "1 witness cosignatures",
    );
  });

  it("a checkpoint whose size or root is changed after signing, or that is no note", () => {
    expectRefused(
      successor({ log: { text: (t) => t.replace(/\n12\n/, "\n13\n") } }),
      ErrorCode.BundleCheckpoint,
      "does not open",
    );
    const s = successor();
    expectRefused({ ...s, checkpoint: utf8("not a note\n") }, ErrorCode.BundleCheckpoint, "does not open");
    expectRefused(
      { ...s, checkpoint: new Uint8Array([0xff, 0xfe, 0x0a]) },
      ErrorCode.BundleCheckpoint,
      "does not open",
    );
  });

  it("the successor's entry not in the log: never logged, or logged with other evidence than shown", () => {
    expectRefused(
      successor({ log: { entry: () => undefined } }),
      ErrorCode.BundleNotLogged,
      "its entry is not in the log",
    );
    // The operator logged the successor with other evidence (say, other members), then shows this.
    expectRefused(
      successor({ log: { entry: (e) => ({ ...e, evidenceDigest: evidenceDigest(new Uint8Array([1])) }) } }),
      ErrorCode.BundleNotLogged,
      "its entry is not in the log",
    );
    // Logged under another namespace or epoch: the core builds the leaf from the statement.
    expectRefused(
      successor({ log: { entry: (e) => ({ ...e, namespace: "elsewhere" }) } }),
      ErrorCode.BundleNotLogged,
      "its entry",
    );
    expectRefused(
      successor({ log: { entry: (e) => ({ ...e, epoch: 3 }) } }),
      ErrorCode.BundleNotLogged,
      "its entry",
    );
  });

  it("the release signed by the frozen key but never logged", () => {
    expectRefused(
      successor({ log: { logRelease: false } }),
      ErrorCode.BundleNotLogged,
      "its release is not in the log",
    );
  });

  it("proofs swapped, cut, lengthened or pointing at another index", () => {
    const s = successor();
    expectRefused(
      { ...s, entryInclusion: s.releaseInclusion },
      ErrorCode.BundleNotLogged,
      "its entry is not in the log",
    );
    expectRefused(
      { ...s, entryInclusion: { ...s.entryInclusion, proof: s.entryInclusion.proof.slice(1) } },
      ErrorCode.BundleNotLogged,
      "its entry",
    );
    expectRefused(
      {
        ...s,
        entryInclusion: { ...s.entryInclusion, proof: [...s.entryInclusion.proof, new Uint8Array(32)] },
      },
      ErrorCode.BundleNotLogged,
      "its entry",
    );
    const flipped = s.entryInclusion.proof.map((p, i) =>
      i === 0 ? p.map((b, j) => (j === 0 ? b ^ 1 : b)) : p,
    );
    expectRefused(
      { ...s, entryInclusion: { ...s.entryInclusion, proof: flipped } },
      ErrorCode.BundleNotLogged,
      "its entry",
    );
    for (const index of [s.entryInclusion.index + 1, 12, -1, 2 ** 53])
      expectRefused(
        { ...s, entryInclusion: { ...s.entryInclusion, index } },
        ErrorCode.BundleNotLogged,
        "its entry",
      );
  });

  it("the artifact swapped for another fleet's, or not an artifact", () => {
    const s = successor();
    const other = successor({ edit: (st) => ({ ...st, fleetId: new Uint8Array(16).fill(0xf3) }) });
    expectRefused({ ...s, artifact: other.artifact }, ErrorCode.Invalid, "fleet id");
    expectRefused(
      { ...s, artifact: new Uint8Array([1, 2, 3]) },
      ErrorCode.Malformed,
      "artifact does not decode",
    );
  });

  it("replayed or old evidence: the old fleet's own entry, or a checkpoint from before the successor was logged", () => {
    // The old fleet's own (genuinely logged) evidence at epoch 1 is no successor.
    expectRefused(
      successor({ edit: (st) => ({ ...st, epoch: 1 }) }),
      ErrorCode.Invalid,
      "its epoch is 1, not 2",
    );
    // An older checkpoint (before the successor's entry): a proof for the new tree does not match it.
    const s = successor();
    const before = successor({ log: { entry: () => undefined, after: 0 } });
    expectRefused({ ...s, checkpoint: before.checkpoint }, ErrorCode.BundleNotLogged, "its entry");
  });

  it("a checkpoint cosigned only by witnesses the fleet did not freeze: the operator's own, under its own names or the frozen ones", () => {
    // The operator runs two witnesses of its own and has them cosign its log's checkpoint; the old
    // fleet counts only the witnesses its genesis froze.
    const own = [
      { name: "operator-witness-1.test", seed: seed(0x91) },
      { name: "operator-witness-2.test", seed: seed(0x92) },
    ];
    expectRefused(
      successor({ log: { cosigners: own } }),
      ErrorCode.BundleWitnesses,
      "0 witness cosignatures, 2 required",
    );
    expectRefused(
      successor({ log: { cosigners: own.map((w, i) => ({ name: witness(i).name, seed: w.seed })) } }),
      ErrorCode.BundleWitnesses,
      "0 witness cosignatures, 2 required",
    );
  });

  it("the frozen terms are the Genesis entry itself: the witness policy it froze decides, nothing else", () => {
    // A Genesis entry as the replicated log carries it (encoded and decoded), not a parameter.
    const genesis = (witnessPolicy: WitnessPolicy): Genesis => {
      const g: Genesis = {
        fleetId: new Uint8Array(16).fill(0xf1),
        ...FROZEN,
        witnessPolicy,
        members: [],
        challenges: [],
        measurement: new Uint8Array(32).fill(0xc1),
        opaqueServerSetup: "setup",
        hpkePrivateKey: seed(1),
        hpkePublicKey: seed(2),
        fleetSigningSeed: seed(3),
        fleetSigningKey: ed25519PublicKeyOf(seed(3)),
        guessLimit: 5,
        createdAt: 1_767_000_000_000,
      };
      const e = decodeRaftEntry(
        encodeRaftEntry({
          index: 1,
          term: 0,
          prevHash: new Uint8Array(32),
          time: g.createdAt,
          requestId: new Uint8Array(0),
          ops: [{ op: "genesis", genesis: g }],
        }),
      );
      const op = e.ops[0]!;
      if (op.op !== "genesis") throw new Error("not a genesis op");
      return op.genesis;
    };
    const s = successor();
    expect(checkSuccessor(platform, genesis(WITNESS_POLICY), s).evidenceDigest).toEqual(
      evidenceDigest(s.evidence),
    );
    // The same checkpoint, for a fleet that froze other witnesses: refused.
    const others: WitnessPolicy = {
      witnesses: [{ name: "elsewhere.test", key: ed25519PublicKeyOf(seed(0x93)) }],
      threshold: 1,
    };
    expectRefused(s, ErrorCode.BundleWitnesses, "0 witness cosignatures, 1 required", genesis(others));
  });

  it("a witness policy that cannot be met refuses every successor", () => {
    const s = successor();
    const w = WITNESS_POLICY.witnesses;
    for (const witnessPolicy of [
      { witnesses: w, threshold: 0 },
      { witnesses: w, threshold: 4 },
      { witnesses: [], threshold: 0 },
      { witnesses: [w[0]!, { name: "again", key: w[0]!.key }], threshold: 2 },
    ])
      expectRefused(s, ErrorCode.Invalid, "witness policy", { ...FROZEN, witnessPolicy });
  });
});
