/**
 * The client's cost of trusting an epoch (prints figures; not a test): verifyBundle on a bundle
 * whose fleet has 5 members, first with its evidence (the audit: 5 attestations, 5 statement
 * signatures, P-256 points; plus checkpoint, witnesses, log signature, counter-signature), then
 * cached (the artifact verified before: no evidence). Made here with real formats and noble keys:
 * a vendor root, 5 HSM identities, a genesis statement, a log with two witnesses.
 * Targets (issue 11): first <= 20 ms in Node, cached <= 1 ms.
 */
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { memoryCheckpointStore, memoryVerifiedCache, type TrustPins, verifyBundle } from "@bkv/client";
import { ed25519PublicKeyOf, ed25519SignWith } from "@bkv/hsm-software";
import {
  artifactDigest,
  bundleSignedMessage,
  cosignatureSigner,
  ed25519NoteSigner,
  formatCheckpoint,
  generateSignerKey,
  logEntryLeafHash,
  MerkleTree,
  parseSignerKey,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  signNote,
  toBase64,
} from "@bkv/tlog";
import {
  artifactFromStatement,
  attestationSignedBytes,
  type BundleJson,
  concatBytes,
  countersignMessage,
  encodeArtifact,
  encodeEvidence,
  encodeStatement,
  fromBase64Url,
  type GenesisStatement,
  quorumOf,
  toHex,
} from "@bkv/wire";

const FIRST_TARGET_MS = 20;
const CACHED_TARGET_MS = 1;

const seed = () => new Uint8Array(randomBytes(32));
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());
const ed25519 = {
  getPublicKey: ed25519PublicKeyOf,
  sign: (message: Uint8Array, s: Uint8Array) => ed25519SignWith(s, message),
};
/** A P-256 public key, SEC1 uncompressed (the bench needs only the public half). */
function p256PublicKey(): Uint8Array {
  const jwk = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({ format: "jwk" });
  return concatBytes(new Uint8Array([4]), fromBase64Url(jwk.x!), fromBase64Url(jwk.y!));
}

/** A log holding one fleet of `n` members, and that fleet's bundle with its evidence. */
async function worldWithFleet(n: number, now: number) {
  const log = generateSignerKey("bench.example/log");
  const witnesses = [1, 2].map((i) => generateSignerKey(`bench.example/w${i}`, SIG_COSIGNATURE_V1));
  const rootSeed = seed();
  const measurement = sha256(new TextEncoder().encode("bench core"));
  const namespace = "bench.example/vault";
  const members = Array.from({ length: n }, () => {
    const s = seed();
    const body = {
      platform: "software",
      vendor: "bench vendor",
      signKey: ed25519.getPublicKey(s),
      agreeKey: p256PublicKey(),
      measurement,
      properties: ["non-extractable"],
    };
    return { s, a: { ...body, signature: ed25519.sign(attestationSignedBytes(body), rootSeed) } };
  });
  const fleetSeed = seed();
  const st: GenesisStatement = {
    fleetId: new Uint8Array(randomBytes(16)),
    namespace,
    epoch: 1,
    logKey: parseVerifierKey(log.vkey).publicKey,
    releaseKey: ed25519.getPublicKey(seed()),
    members: members.map((m) => m.a),
    challenges: members.map(() => seed()),
    measurement,
    policy: { guessLimit: 10, n, quorum: quorumOf(n) },
    maxSuccessorGuessLimit: 10,
    witnessPolicy: {
      witnesses: witnesses.map((w) => {
        const v = parseVerifierKey(w.vkey);
        return { name: v.name, key: v.publicKey };
      }),
      threshold: 2,
    },
    vaultPublicKey: seed(),
    fleetSigningKey: ed25519.getPublicKey(fleetSeed),
    time: now - 60_000,
  };
  const statement = encodeStatement(st);
  const evidence = encodeEvidence({
    statement,
    signatures: members.map((m) => ed25519.sign(statement, m.s)),
  });
  const artifact = encodeArtifact(
    artifactFromStatement(st, { notBefore: now - 1000, notAfter: now + 86_400_000 }),
  );
  const evidenceDigest = sha256(evidence);
  const tree = new MerkleTree();
  // A few earlier entries so the inclusion proof has some length.
  for (let i = 0; i < 7; i++)
    tree.append(
      logEntryLeafHash({
        namespace: "bench.example/other",
        epoch: i,
        artifact: seed(),
        evidenceDigest: seed(),
      }),
    );
  const index = tree.append(logEntryLeafHash({ namespace, epoch: 1, artifact, evidenceDigest }));
  const logSeed = parseSignerKey(log.skey).seed;
  const logSignature = ed25519.sign(bundleSignedMessage(namespace, 1, artifactDigest(artifact)), logSeed);
  const countersignature = ed25519.sign(
    countersignMessage({ namespace, epoch: 1, artifactDigest: artifactDigest(artifact), logSignature }),
    fleetSeed,
  );
  const sign = () =>
    signNote(
      formatCheckpoint({ origin: "bench.example/log", size: tree.size, root: tree.root(), extensions: [] }),
      [
        ed25519NoteSigner(log.skey),
        ...witnesses.map((w) => cosignatureSigner(w.skey, () => Math.floor(now / 1000))),
      ],
    );
  const entry = {
    namespace,
    epoch: 1,
    artifact: toBase64(artifact),
    evidenceDigest: toBase64(evidenceDigest),
    index,
    logSignature: toBase64(logSignature),
    countersignature: toBase64(countersignature),
  };
  /** The log grows by one entry: the fleet's bundle against the new checkpoint, proven consistent from `from`. */
  const grown = async (from: number): Promise<BundleJson> => {
    tree.append(
      logEntryLeafHash({
        namespace: "bench.example/other",
        epoch: tree.size,
        artifact: seed(),
        evidenceDigest: seed(),
      }),
    );
    return {
      ...entry,
      inclusionProof: tree.inclusionProof(index, tree.size).map(toBase64),
      checkpoint: await sign(),
      consistency: { from, proof: tree.consistencyProof(from, tree.size).map(toBase64) },
    };
  };
  const pins: TrustPins = {
    logKey: log.vkey,
    witnessKeys: witnesses.map((w) => w.vkey),
    witnessThreshold: 2,
    namespace,
    vendorRoots: [{ name: "bench vendor", key: toHex(ed25519.getPublicKey(rootSeed)), test: false }],
    measurements: [toHex(measurement)],
    maxGuessLimit: 10,
  };
  const bundle: BundleJson = {
    ...entry,
    evidence: toBase64(evidence),
    inclusionProof: tree.inclusionProof(index, tree.size).map(toBase64),
    checkpoint: await sign(),
  };
  return { pins, bundle, grown };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchBundleVerify(opts: { members?: number; runs?: number } = {}): Promise<void> {
  const n = opts.members ?? 5;
  const runs = opts.runs ?? 50;
  const now = Date.now();
  const { pins, bundle, grown } = await worldWithFleet(n, now);
  const time = async (f: () => Promise<unknown>) => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  // The very first verification in this process (cold code), then fresh devices (empty cache).
  // Each first verification has a checkpoint of its own, so no signature is one verified before.
  const freshDevice = async () => {
    const b = { ...(await grown(1)), evidence: bundle.evidence };
    const { consistency: _c, ...noProof } = b;
    return time(() => verifyBundle(noProof, pins, memoryCheckpointStore(), now, memoryVerifiedCache()));
  };
  const cold = await freshDevice();
  const first: number[] = [];
  for (let i = 0; i < runs; i++) first.push(await freshDevice());
  // One device, the artifact verified before: bundles as vault answers carry them (no evidence).
  const store = memoryCheckpointStore();
  const cache = memoryVerifiedCache();
  const verified = await verifyBundle(bundle, pins, store, now, cache);
  if (!verified.evidenceVerified) throw new Error("bench: the first verification did not check the evidence");
  // The log grew since: a new checkpoint (its log and witness signatures are new), proven consistent.
  const cached: number[] = [];
  for (let i = 0; i < runs; i++) {
    const b = await grown((await store.load())!.size);
    cached.push(await time(() => verifyBundle(b, pins, store, now, cache)));
  }
  // The same bundle again (a new operation before the log grew): signatures verified before.
  const again = await grown((await store.load())!.size);
  await verifyBundle(again, pins, store, now, cache);
  const same: number[] = [];
  for (let i = 0; i < runs * 4; i++)
    same.push(await time(() => verifyBundle(again, pins, store, now, cache)));
  const verdict = (ms: number, target: number) => (ms <= target ? "ok" : "ABOVE TARGET");
  const f = median(first);
  const c = median(cached);
  const a = median(same);
  const row = (name: string, ms: number, target: string) =>
    `  ${name.padEnd(52)}${ms.toFixed(2).padStart(8)}  ${target}`;
  const out = [
    `client trust benchmark: verifyBundle, fleet of ${n} members, Node ${process.version}, strict Ed25519 and P-256 (noble)`,
    "",
    `  ${"".padEnd(52)}${"ms".padStart(8)}  target`,
    row("first verification with evidence, cold process", cold, "(info)"),
    row(
      `first verification with evidence (median of ${runs})`,
      f,
      `${verdict(f, FIRST_TARGET_MS)} (<= ${FIRST_TARGET_MS} ms)`,
    ),
    row(
      `cached artifact, new checkpoint (median of ${runs})`,
      c,
      `${verdict(c, CACHED_TARGET_MS)} (<= ${CACHED_TARGET_MS} ms)`,
    ),
    row(
      `cached artifact, same bundle again (median of ${runs * 4})`,
      a,
      `${verdict(a, CACHED_TARGET_MS)} (<= ${CACHED_TARGET_MS} ms)`,
    ),
  ];
  process.stdout.write(`${out.join("\n")}\n\n`);
}
