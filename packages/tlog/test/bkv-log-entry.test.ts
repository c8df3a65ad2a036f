/** The log's leaf entry and bundle signature encodings, and a client's end-to-end bundle check. */

import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import {
  artifactDigest,
  bundleSignedMessage,
  cosignatureSigner,
  decodeLogEntry,
  ed25519NoteSigner,
  encodeLogEntry,
  evidenceDigest,
  formatCheckpoint,
  generateSignerKey,
  isTlogError,
  type LogBundle,
  leafHash,
  MerkleTree,
  maxArtifactSize,
  openCosignedCheckpoint,
  parseSignerKey,
  SIG_COSIGNATURE_V1,
  signNote,
  TlogErrorCode,
  verifyBundleSignature,
  verifyLogBundle,
} from "../src/index.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function code(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (isTlogError(e)) return e.code;
    throw e;
  }
}

describe("log entry", () => {
  const entry = {
    namespace: "bkv.example/prod",
    epoch: 7,
    artifact: new Uint8Array([1, 2, 3]),
    evidenceDigest: evidenceDigest(new Uint8Array([9])),
  };

  it("has the documented layout", () => {
    const b = encodeLogEntry(entry);
    const want =
      Buffer.from("bkv-log-entry/v1\0").toString("hex") +
      "0010" +
      Buffer.from("bkv.example/prod").toString("hex") +
      "00000007" +
      "00000003010203" +
      hex(entry.evidenceDigest);
    expect(hex(b)).toBe(want);
    expect(decodeLogEntry(b)).toEqual(entry);
  });

  it("decodes strictly", () => {
    const b = encodeLogEntry(entry);
    expect(code(() => decodeLogEntry(b.subarray(0, b.length - 1)))).toBe(TlogErrorCode.BadEntry);
    expect(code(() => decodeLogEntry(new Uint8Array([...b, 0])))).toBe(TlogErrorCode.BadEntry);
    const wrongMagic = b.slice();
    wrongMagic[3]! ^= 1;
    expect(code(() => decodeLogEntry(wrongMagic))).toBe(TlogErrorCode.BadEntry);
    const badNs = b.slice();
    badNs[19] = 0x20;
    expect(code(() => decodeLogEntry(badNs))).toBe(TlogErrorCode.BadEntry);
    expect(code(() => encodeLogEntry({ ...entry, namespace: "" }))).toBe(TlogErrorCode.BadEntry);
    expect(code(() => encodeLogEntry({ ...entry, epoch: 2 ** 32 }))).toBe(TlogErrorCode.BadEntry);
    const big = new Uint8Array(maxArtifactSize(entry.namespace));
    expect(encodeLogEntry({ ...entry, artifact: big }).length).toBe(65_535);
    expect(code(() => encodeLogEntry({ ...entry, artifact: new Uint8Array(big.length + 1) }))).toBe(
      TlogErrorCode.BadEntry,
    );
  });
});

describe("bundle signature", () => {
  it("signs the documented message", () => {
    const digest = artifactDigest(new Uint8Array([1]));
    const m = bundleSignedMessage("ns", 258, digest);
    expect(hex(m)).toBe(
      `${Buffer.from("bkv-bundle/v1").toString("hex")}000002${Buffer.from("ns").toString("hex")}00000102${hex(digest)}`,
    );
    const { skey, vkey } = generateSignerKey("example.com/log");
    const sig = ed25519.sign(m, parseSignerKey(skey).seed);
    expect(verifyBundleSignature(vkey, "ns", 258, new Uint8Array([1]), sig)).toBe(true);
    expect(verifyBundleSignature(vkey, "ns", 259, new Uint8Array([1]), sig)).toBe(false);
    expect(verifyBundleSignature(vkey, "nt", 258, new Uint8Array([1]), sig)).toBe(false);
    expect(verifyBundleSignature(vkey, "ns", 258, new Uint8Array([2]), sig)).toBe(false);
  });
});

describe("verifyLogBundle", () => {
  it("accepts a good bundle and rejects every kind of tampering", async () => {
    const origin = "example.com/log";
    const log = generateSignerKey(origin);
    const w1 = generateSignerKey("w1.example", SIG_COSIGNATURE_V1);
    const w2 = generateSignerKey("w2.example", SIG_COSIGNATURE_V1);
    const tree = new MerkleTree();
    for (let i = 0; i < 5; i++) tree.append(leafHash(new Uint8Array([i])));
    const artifact = new TextEncoder().encode("fleet artifact");
    const e = { namespace: "ns", epoch: 1, artifact, evidenceDigest: evidenceDigest(new Uint8Array([1])) };
    const index = tree.append(leafHash(encodeLogEntry(e)));
    tree.append(leafHash(new Uint8Array([42])));
    const text = formatCheckpoint({ origin, size: tree.size, root: tree.root(), extensions: [] });
    const checkpoint = await signNote(text, [
      ed25519NoteSigner(log.skey),
      cosignatureSigner(w1.skey, () => 1),
      cosignatureSigner(w2.skey, () => 2),
    ]);
    const seed = parseSignerKey(log.skey).seed;
    const bundle: LogBundle = {
      ...e,
      index,
      logSignature: ed25519.sign(bundleSignedMessage("ns", 1, artifactDigest(artifact)), seed),
      inclusionProof: tree.inclusionProof(index),
      checkpoint,
    };
    const policy = { logKey: log.vkey, witnessKeys: [w1.vkey, w2.vkey], threshold: 2 };
    expect(verifyLogBundle(bundle, policy).cosigners).toEqual(["w1.example", "w2.example"]);
    expect(code(() => verifyLogBundle(bundle, { ...policy, threshold: 3 }))).toBe(TlogErrorCode.Unverified);
    expect(code(() => verifyLogBundle({ ...bundle, epoch: 2 }, policy))).toBe(TlogErrorCode.BadSignature);
    expect(code(() => verifyLogBundle({ ...bundle, index: index + 1 }, policy))).toBe(TlogErrorCode.BadProof);
    expect(
      code(() => verifyLogBundle({ ...bundle, evidenceDigest: evidenceDigest(new Uint8Array([2])) }, policy)),
    ).toBe(TlogErrorCode.BadProof);
    const onlyW1 = checkpoint
      .split("\n")
      .filter((l) => !l.startsWith("— w2.example"))
      .join("\n");
    expect(code(() => verifyLogBundle({ ...bundle, checkpoint: onlyW1 }, policy))).toBe(
      TlogErrorCode.Unverified,
    );
    expect(openCosignedCheckpoint(onlyW1, { ...policy, threshold: 1 }).cosigners).toEqual(["w1.example"]);
    const other = generateSignerKey(origin);
    expect(code(() => verifyLogBundle(bundle, { ...policy, logKey: other.vkey }))).toBe(
      TlogErrorCode.BadSignature,
    );
  });
});
