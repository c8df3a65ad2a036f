/**
 * Red team, sixth round (the vault operator, DESIGN.md §2: it serves the client any bytes; it holds
 * neither the log's key, nor a witness's, nor a genuine vendor root's; the world of bundle-world.ts
 * gives the test every key, so each attack below uses only what the operator could make, plus
 * signatures the real parties would give). Each covers a way in that the earlier tests did not name:
 *
 *   - witness counting: one witness's cosignature twice, relabelled under another pinned witness's
 *     name and key ID, or under a pinned name with another key ID;
 *   - domain separation: signatures of one message type offered as another (the log's checkpoint
 *     signature as its bundle signature, the log's signature of another (namespace, epoch), the fleet
 *     key's signature over the log's message as its counter-signature);
 *   - evidence for n members with other than n member signatures in member order (fewer, one
 *     repeated, two swapped, one extra) and evidence with trailing bytes;
 *   - an artifact that says what the statement says but with its members in another order, or with
 *     trailing bytes;
 *   - the validity window's edges (inclusive), and the store unchanged after each refusal;
 *   - Nitro documents: a duplicate map key (two user_data, two PCR0), a tagged COSE_Sign1, an extra
 *     protected header label, a non-empty unprotected header.
 *
 * One did not hold: the verified-artifact cache key (verifiedArtifactKey) bound each pinned vendor
 * root's name, key and test flag but not its kind, so a fleet verified under an Ed25519 root was
 * still "verified" under pins naming the same 32 bytes as an AWS Nitro root fingerprint, and its
 * bundle was accepted without evidence (and without any Nitro document behind its members).
 */
import {
  memoryCheckpointStore,
  memoryVerifiedCache,
  nitroImageMeasurement,
  nitroMemberUserData,
  verifyBundle,
  verifyNitroDocument,
} from "@bkv/client";
import { type TestDocumentFields, TestDoubleNitroPki, testDoublePcr } from "@bkv/hsm-nitro";
import { fromBase64, keyId, parseNote, parseVerifierKey, SIG_COSIGNATURE_V1, toBase64 } from "@bkv/tlog";
import {
  type BundleJson,
  concatBytes,
  decodeEvidence,
  ErrorCode,
  encodeEvidence,
  isBkvError,
  logBundleMessage,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256, p384 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { encode } from "cborg";
import { describe, expect, it } from "vitest";
import { NOW, type World, world } from "./bundle-world.js";

async function outcome(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => "accepted",
    (err: unknown) => err,
  );
  return isBkvError(e) ? e.code : String(e);
}

/** verifyBundle on a fresh store; the outcome, and whether the store still holds nothing. */
async function fresh(b: BundleJson, w: World, now = NOW): Promise<{ outcome: string; stored: boolean }> {
  const store = memoryCheckpointStore();
  const r = await outcome(verifyBundle(b, w.pins, store, now, memoryVerifiedCache()));
  return { outcome: r, stored: (await store.load()) !== null };
}

const refused = (code: ErrorCode) => ({ outcome: code, stored: false });

/** A signature line `— name base64(keyId || sig)` for `name`'s key ID under `publicKey`. */
function line(name: string, publicKey: Uint8Array, sig: Uint8Array): string {
  const id = new Uint8Array(4);
  new DataView(id.buffer).setUint32(0, keyId(name, SIG_COSIGNATURE_V1, publicKey));
  return `— ${name} ${toBase64(concatBytes(id, sig))}\n`;
}

describe("red team 6: witness cosignatures, counted", () => {
  it("one witness's cosignature twice, relabelled under the other pinned witness, or under its name with another key ID: never two witnesses", async () => {
    const w = world();
    w.append(w.fleet());
    const b = await w.bundle(0);
    const one = await w.checkpoint(1, [w.w1]);
    const w1 = parseVerifierKey(w.w1.vkey);
    const w2 = parseVerifierKey(w.w2.vkey);
    const cosig = parseNote(one).signatures.find((s) => s.name === w1.name)!.signature;
    // The same line twice.
    const twice = `${one}${line(w1.name, w1.publicKey, cosig)}`;
    expect(await fresh({ ...b, checkpoint: twice }, w)).toEqual(refused(ErrorCode.BundleWitnesses));
    // Relabelled as w2 (w2's name and key ID): it does not verify under w2's key.
    const asW2 = `${one}${line(w2.name, w2.publicKey, cosig)}`;
    expect(await fresh({ ...b, checkpoint: asW2 }, w)).toEqual(refused(ErrorCode.BundleWitnesses));
    // w2's name with w1's key ID: no pinned key has that (name, key ID), so it is not counted.
    const id1 = new Uint8Array(4);
    new DataView(id1.buffer).setUint32(0, keyId(w1.name, SIG_COSIGNATURE_V1, w1.publicKey));
    const mixed = `${one}— ${w2.name} ${toBase64(concatBytes(id1, cosig))}\n`;
    expect(await fresh({ ...b, checkpoint: mixed }, w)).toEqual(refused(ErrorCode.BundleWitnesses));
    // Sanity: both witnesses, as they sign, pass.
    expect(await fresh(b, w)).toEqual({ outcome: "accepted", stored: true });
  });
});

describe("red team 6: a signature of one message type offered as another", () => {
  it("the log's checkpoint signature as its bundle signature, and the log's signature of the same artifact at another (namespace, epoch)", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    const logName = parseVerifierKey(w.pins.logKey).name;
    const noteSig = parseNote(b.checkpoint).signatures.find((s) => s.name === logName)!.signature;
    expect(noteSig.length).toBe(64);
    const withSig = (sig: Uint8Array): BundleJson => ({
      ...b,
      logSignature: toBase64(sig),
      // The fleet (an HSM the operator runs) counter-signs whatever log signature it is given here.
      countersignature: toBase64(w.countersign(f.artifactBytes, sig, f.fleetSeed)),
    });
    expect(await fresh(withSig(noteSig), w)).toEqual(refused(ErrorCode.BundleLogSignature));
    for (const [ns, epoch] of [
      ["example.test/releases", 1],
      ["example.test/vault", 2],
    ] as const) {
      const other = w.logSign(f.artifactBytes, ns, epoch);
      expect(await fresh(withSig(other), w)).toEqual(refused(ErrorCode.BundleLogSignature));
    }
  });

  it("the fleet key's signature over the log's message, or its counter-signature of another namespace, as the counter-signature", async () => {
    const w = world();
    const f = w.fleet();
    w.append(f);
    const b = await w.bundle(0);
    const logSignature = fromBase64(b.logSignature)!;
    const overLogMessage = ed25519.sign(
      logBundleMessage(b.namespace, b.epoch, sha256(f.artifactBytes)),
      f.fleetSeed,
    );
    expect(await fresh({ ...b, countersignature: toBase64(overLogMessage) }, w)).toEqual(
      refused(ErrorCode.BundleNotCountersigned),
    );
    const otherNs = w.countersign(f.artifactBytes, logSignature, f.fleetSeed, "example.test/other", 1);
    expect(await fresh({ ...b, countersignature: toBase64(otherNs) }, w)).toEqual(
      refused(ErrorCode.BundleNotCountersigned),
    );
  });
});

describe("red team 6: evidence whose signatures are not one per member, in member order", () => {
  it("fewer, one repeated, two swapped, one extra, or trailing bytes after the evidence: refused, nothing stored", async () => {
    const w = world();
    const f = w.fleet();
    const ev = decodeEvidence(f.evidence);
    const [s1, s2, s3] = ev.signatures as [Uint8Array, Uint8Array, Uint8Array];
    const variants: Uint8Array[] = [
      encodeEvidence({ ...ev, signatures: [s1, s2] }),
      encodeEvidence({ ...ev, signatures: [s1, s2, s1] }),
      encodeEvidence({ ...ev, signatures: [s2, s1, s3] }),
      encodeEvidence({ ...ev, signatures: [s1, s2, s3, s3] }),
      concatBytes(f.evidence, new Uint8Array([0])),
    ];
    // Each is logged under its own digest (the log "signs anything"), so only the audit can refuse it.
    const indexes = variants.map((evidence) => w.append(f, { evidence }));
    for (const i of indexes) {
      const b = await w.bundle(i);
      expect(await fresh(b, w)).toEqual(refused(ErrorCode.BundleEvidence));
    }
    // The genuine evidence of the same fleet is accepted (same artifact, at the latest checkpoint).
    const good = w.append(f);
    expect(await fresh(await w.bundle(good), w)).toEqual({ outcome: "accepted", stored: true });
  });
});

describe("red team 6: an artifact that is not byte for byte the statement's", () => {
  it("its members in another order, or trailing bytes after it, are refused", async () => {
    const w = world();
    const f = w.fleet();
    const [m1, m2, m3] = f.artifact.members;
    const reordered = w.append(f, { artifact: { ...f.artifact, members: [m2!, m1!, m3!] } });
    expect(await fresh(await w.bundle(reordered), w)).toEqual(refused(ErrorCode.BundleEvidence));
    const trailing = w.append(f, { artifact: concatBytes(f.artifactBytes, new Uint8Array([0])) });
    expect(await fresh(await w.bundle(trailing), w)).toEqual(refused(ErrorCode.Malformed));
  });
});

describe("red team 6: the validity window's edges", () => {
  it("valid from notBefore to notAfter inclusive; a millisecond outside either edge is BUNDLE_EXPIRED", async () => {
    const w = world();
    w.append(w.fleet({ notBefore: NOW - 1000, notAfter: NOW }));
    const b = await w.bundle(0);
    expect(await fresh(b, w, NOW)).toEqual({ outcome: "accepted", stored: true });
    expect(await fresh(b, w, NOW - 1000)).toEqual({ outcome: "accepted", stored: true });
    expect(await fresh(b, w, NOW + 1)).toEqual(refused(ErrorCode.BundleExpired));
    expect(await fresh(b, w, NOW - 1001)).toEqual(refused(ErrorCode.BundleExpired));
  });
});

describe("red team 6: Nitro documents that two parsers could read two ways", () => {
  const T = Date.UTC(2026, 10, 1, 12);
  const pki = new TestDoubleNitroPki({ notBefore: T - 36_000_000, notAfter: T + 36_000_000 });
  const roots = [pki.rootFingerprint];
  const pcrs = new Map([0, 1, 2, 3].map((i) => [i, testDoublePcr("bkv image v1", i)]));
  const signKey = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
  const agreeKey = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const fields: TestDocumentFields = {
    moduleId: "i-0123456789abcdef0-enc0123456789abcdef",
    timestamp: T,
    pcrs,
    userData: nitroMemberUserData(signKey, agreeKey),
    nonce: null,
    publicKey: null,
  };
  const code = (f: () => unknown): string => {
    try {
      f();
      return "accepted";
    } catch (e) {
      return isBkvError(e) ? e.code : String(e);
    }
  };
  /** Replace the one occurrence of `from` in `bytes` with `to` (same length). */
  const patch = (bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array => {
    const hex = Buffer.from(bytes).toString("hex");
    const f = Buffer.from(from).toString("hex");
    const at = hex.indexOf(f);
    expect(at % 2).toBe(0);
    expect(hex.indexOf(f, at + 1)).toBe(-1);
    return new Uint8Array(
      Buffer.from(hex.slice(0, at) + Buffer.from(to).toString("hex") + hex.slice(at + f.length), "hex"),
    );
  };

  it("sanity: the document as the NSM writes it verifies and states this image", () => {
    const doc = verifyNitroDocument(pki.document(fields), roots);
    expect(doc.userData).toEqual(fields.userData);
    expect(nitroImageMeasurement(doc.pcrs.get(0)!, doc.pcrs.get(1)!, doc.pcrs.get(2)!)).toEqual(
      nitroImageMeasurement(pcrs.get(0)!, pcrs.get(1)!, pcrs.get(2)!),
    );
  });

  it("two user_data fields (the member's keys, then the operator's), signed: MALFORMED", () => {
    const other = nitroMemberUserData(ed25519.getPublicKey(ed25519.utils.randomSecretKey()), agreeKey);
    // A ninth-and-a-half field "user_datX" holding other keys, renamed "user_data" after encoding.
    const payload = patch(
      pki.payload(fields, { user_datX: other }),
      new TextEncoder().encode("user_datX"),
      new TextEncoder().encode("user_data"),
    );
    expect(code(() => verifyNitroDocument(pki.signPayload(payload), roots))).toBe(ErrorCode.Malformed);
  });

  it("PCR0 stated twice (the image, then zeros: a debug enclave), signed: MALFORMED", () => {
    const withExtra = new Map(pcrs);
    withExtra.set(9, new Uint8Array(48));
    // Copies (new Uint8Array): cborg's encode returns a view of a buffer its next call reuses, and
    // in Node a Buffer, whose slice() is a view too.
    const map = new Uint8Array(encode(withExtra, { mapSorter: () => 0 }));
    // The last entry is key 9 (one byte), a 48-byte string header (2 bytes) and 48 zero bytes.
    const at = map.length - 51;
    expect(map[at]).toBe(9);
    const dup = new Uint8Array(map);
    dup[at] = 0;
    const payload = patch(pki.payload({ ...fields, pcrs: withExtra }), map, dup);
    expect(code(() => verifyNitroDocument(pki.signPayload(payload), roots))).toBe(ErrorCode.Malformed);
  });

  it("a COSE_Sign1 in tag 18, an extra protected header label, or a non-empty unprotected header: MALFORMED", () => {
    const doc = pki.document(fields);
    expect(code(() => verifyNitroDocument(concatBytes(new Uint8Array([0xd2]), doc), roots))).toBe(
      ErrorCode.Malformed,
    );
    const payload = pki.payload(fields);
    const p384Sign = (header: Uint8Array) => {
      const toSign = encode(["Signature1", header, new Uint8Array(0), payload]);
      return p384.sign(toSign, pki.leafKey.secretKey);
    };
    const twoLabels = encode(
      new Map<number, unknown>([
        [1, -35],
        [4, new Uint8Array(8)],
      ]),
    );
    const extraLabel = encode([twoLabels, new Map(), payload, p384Sign(twoLabels)]);
    expect(code(() => verifyNitroDocument(extraLabel, roots))).toBe(ErrorCode.Malformed);
    const es384 = encode(new Map([[1, -35]]));
    const unprotected = encode([es384, new Map([[4, new Uint8Array(8)]]), payload, p384Sign(es384)]);
    expect(code(() => verifyNitroDocument(unprotected, roots))).toBe(ErrorCode.Malformed);
    // Sanity: the same construction with an empty unprotected header verifies.
    expect(code(() => verifyNitroDocument(encode([es384, new Map(), payload, p384Sign(es384)]), roots))).toBe(
      "accepted",
    );
  });
});

describe("red team 6: the verified-artifact cache and the kind of a pinned root", () => {
  it("a fleet verified under an Ed25519 root is not taken as verified under pins that name the same 32 bytes as an AWS Nitro root", async () => {
    // The cache key binds every pin the evidence was checked against; a root's kind decides which
    // attestations it vouches for (an Ed25519 vendor signature, or a Nitro chain to a certificate
    // with that SHA-256), so pins that change only the kind must verify the evidence again.
    const w = world();
    const f = w.fleet();
    const i = w.append(f);
    const cache = memoryVerifiedCache();
    const first = await verifyBundle(await w.bundle(i), w.pins, memoryCheckpointStore(), NOW, cache);
    expect(first.evidenceVerified).toBe(true);
    const asNitro = {
      ...w.pins,
      vendorRoots: w.pins.vendorRoots.map((r) => ({ ...r, kind: "aws-nitro" as const })),
    };
    const store = memoryCheckpointStore();
    // Without evidence: the artifact is not known under these pins, so evidence is needed.
    expect(await outcome(verifyBundle(await w.bundle(i, undefined, false), asNitro, store, NOW, cache))).toBe(
      ErrorCode.BundleEvidence,
    );
    // With it: no Nitro document vouches for these members.
    expect(await outcome(verifyBundle(await w.bundle(i), asNitro, store, NOW, cache))).toBe(
      ErrorCode.BundleEvidence,
    );
    expect(await store.load()).toBeNull();
  });
});
