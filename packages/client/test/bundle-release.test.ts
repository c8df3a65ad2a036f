/**
 * Accepted code is published, not chosen by the operator (issue 11 item 2). A client that pins a
 * release key instead of measurements accepts a fleet's code only if the bundle proves, against
 * its own checkpoint, that the pinned release key published exactly that measurement in the pinned
 * releases namespace of the same log. The operator holds every other key here (the fleet, a release
 * key of its own, the submitter key), and the log and witnesses sign what it submits; each attack
 * is refused with BUNDLE_MEASUREMENT, saying why, and the store and the cache stay as they were.
 */
import {
  memoryCheckpointStore,
  memoryVerifiedCache,
  parseTrustPins,
  type TrustPins,
  type VerifiedArtifactCache,
  verifiedArtifactKey,
  verifyBundle,
} from "@bkv/client";
import { encodeSignedRelease, type Release, releaseSignedBytes, toBase64 } from "@bkv/tlog";
import { BkvError, type BundleJson, ErrorCode, isBkvError, type ReleaseBundleJson, toHex } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { MEASUREMENT, NOW, type World, world } from "./bundle-world.js";

const RELEASES = "example.test/vault-releases";
const OTHER_CODE = new Uint8Array(32).fill(9);

function releaseKey() {
  const seed = ed25519.utils.randomSecretKey();
  return { seed, publicKey: ed25519.getPublicKey(seed) };
}
type ReleaseKey = ReturnType<typeof releaseKey>;

function signedRelease(key: ReleaseKey, o: Partial<Release> = {}): Uint8Array {
  const r: Release = {
    namespace: RELEASES,
    epoch: 1,
    measurement: MEASUREMENT,
    sourceRevision: "0123456789abcdef0123456789abcdef01234567",
    buildRecipe: "npm ci && npm run build (esbuild 0.28.2)",
    time: NOW - 3_600_000,
    ...o,
  };
  return encodeSignedRelease({ ...r, signature: ed25519.sign(releaseSignedBytes(r), key.seed) });
}

/** Pins with the release key and no measurements. */
function releasePins(w: World, key: ReleaseKey): TrustPins {
  return { ...w.pins, measurements: [], release: { key: toHex(key.publicKey), namespace: RELEASES } };
}

/** Log a release entry (empty evidence) and return its index. */
function logRelease(
  w: World,
  f: ReturnType<World["fleet"]>,
  artifact: Uint8Array,
  namespace = RELEASES,
  epoch = 1,
) {
  return w.append(f, { artifact, namespace, epoch, evidence: new Uint8Array(0) });
}

/** The log's bundle of a release entry (no counter-signature, no evidence). */
async function releaseBundle(w: World, index: number, size?: number): Promise<ReleaseBundleJson> {
  const { countersignature: _c, evidence: _e, ...rest } = await w.bundle(index, size);
  return rest;
}

async function attempt(b: BundleJson, pins: TrustPins): Promise<{ code: string; message: string }> {
  const store = memoryCheckpointStore();
  const cache = memoryVerifiedCache();
  const added: string[] = [];
  const spy: VerifiedArtifactCache = {
    has: (k) => cache.has(k),
    add: async (k) => {
      added.push(k);
      await cache.add(k);
    },
  };
  try {
    await verifyBundle(b, pins, store, NOW, spy);
    return { code: "accepted", message: "" };
  } catch (e) {
    expect(await store.load()).toBeNull();
    expect(added).toEqual([]);
    if (!isBkvError(e)) throw e;
    return { code: e.code, message: e.message };
  }
}

/** A world with a genuine fleet at index 0 and a release of `release` bytes at index 1. */
async function setup(release?: (k: ReleaseKey) => Uint8Array) {
  const w = world();
  // The deployment's release key: the one the fleet froze at genesis.
  const key = w.release;
  const f = w.fleet();
  w.append(f);
  logRelease(w, f, (release ?? ((k) => signedRelease(k)))(key));
  const b = await w.bundle(0);
  return { w, key, f, b, pins: releasePins(w, key), release: await releaseBundle(w, 1) };
}

describe("the client accepts code pinned or published under its pinned release key", () => {
  it("accepts a fleet whose measurement the pinned release key published, at the bundle's checkpoint", async () => {
    const { b, pins, release } = await setup();
    expect(await attempt({ ...b, release }, pins)).toEqual({ code: "accepted", message: "" });
  });

  it("refuses a measurement neither pinned nor released", async () => {
    const { b, pins } = await setup();
    const r = await attempt(b, pins);
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/not pinned.*carries no release/);
  });

  it("refuses a release entry signed by another key (the operator's own release key)", async () => {
    const operator = releaseKey();
    const { b, pins, release } = await setup(() => signedRelease(operator));
    const r = await attempt({ ...b, release }, pins);
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/not signed by the pinned release key/);
  });

  it("refuses a release of other code", async () => {
    const { b, pins, release } = await setup((k) => signedRelease(k, { measurement: OTHER_CODE }));
    const r = await attempt({ ...b, release }, pins);
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/release is for other code/);
  });

  it("refuses a release in another namespace than the pinned one", async () => {
    const w = world();
    const key = w.release;
    const f = w.fleet();
    w.append(f);
    const ns = "example.test/other-releases";
    logRelease(w, f, signedRelease(key, { namespace: ns }), ns);
    const r = await attempt(
      { ...(await w.bundle(0)), release: await releaseBundle(w, 1) },
      releasePins(w, key),
    );
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/not the pinned/);
    // Relabeling the entry's namespace breaks its inclusion proof.
    const relabeled = { ...(await releaseBundle(w, 1)), namespace: RELEASES };
    const r2 = await attempt({ ...(await w.bundle(0)), release: relabeled }, releasePins(w, key));
    expect(r2.code).toBe(ErrorCode.BundleMeasurement);
    expect(r2.message).toMatch(/not in the log/);
  });

  it("refuses a release proven against another checkpoint than the bundle's", async () => {
    const w = world();
    const key = w.release;
    const f = w.fleet();
    w.append(f);
    logRelease(w, f, signedRelease(key));
    w.append(w.fleet({ epoch: 2 }), { namespace: "example.test/elsewhere" });
    // The fleet bundle at size 2, its release at size 3: both genuine, but not one checkpoint.
    const b = await w.bundle(0, 2);
    const r = await attempt({ ...b, release: await releaseBundle(w, 1, 3) }, releasePins(w, key));
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/another checkpoint/);
    // The same release at the bundle's size is accepted.
    expect((await attempt({ ...b, release: await releaseBundle(w, 1, 2) }, releasePins(w, key))).code).toBe(
      "accepted",
    );
  });

  it("refuses a release that is not in the log (signed by the pinned key, never appended)", async () => {
    const { w, key, b, pins, release } = await setup();
    // A second release, correctly signed but not logged, presented with index 1's proof.
    const unlogged = signedRelease(key, { sourceRevision: "not logged" });
    const r = await attempt({ ...b, release: { ...release, artifact: toBase64(unlogged) } }, pins);
    expect(r.code).toBe(ErrorCode.BundleMeasurement);
    expect(r.message).toMatch(/not in the log/);
    // A proof for an index beyond the checkpoint fails the same way.
    const r2 = await attempt({ ...b, release: { ...release, index: 7 } }, pins);
    expect(r2.code).toBe(ErrorCode.BundleMeasurement);
    void w;
  });

  it("without a release pin, an unpinned measurement is refused even with a valid release", async () => {
    const { w, b, release } = await setup();
    const pins = { ...w.pins, measurements: [toHex(OTHER_CODE)] };
    expect((await attempt({ ...b, release }, pins)).code).toBe(ErrorCode.BundleMeasurement);
  });

  it("refuses a fleet whose genesis froze other witnesses than the pinned ones, by name", async () => {
    // The operator's fleet froze its own witness: it would later accept a successor on checkpoints
    // only that witness cosigned. Every other part of the bundle holds (the pinned witnesses cosign
    // its checkpoint); the frozen witness policy alone is refused.
    const w = world();
    const operatorWitness = { name: "operator.example/w", key: releaseKey().publicKey };
    const f = w.fleet({ witnessPolicy: { witnesses: [operatorWitness], threshold: 1 } });
    w.append(f);
    const r = await attempt(await w.bundle(0), w.pins);
    expect(r.code).toBe(ErrorCode.BundleEvidence);
    expect(r.message).toMatch(/statement\.witnesses/);
    expect(r.message).toContain("operator.example/w");
    // The same world's genuine fleet (the pinned witnesses frozen) is accepted.
    const g = world();
    g.append(g.fleet());
    expect((await attempt(await g.bundle(0), g.pins)).code).toBe("accepted");
  });

  it("refuses a fleet whose genesis froze another release key than the pinned one, by name", async () => {
    // The operator's fleet froze its own release key: it would later accept a successor running
    // whatever code that key releases. Its code is genuinely released under the pinned key, and
    // every other part of the bundle holds; the frozen key alone is refused.
    const w = world();
    const operator = releaseKey();
    const f = w.fleet({ releaseKey: operator.publicKey });
    w.append(f);
    logRelease(w, f, signedRelease(w.release));
    const pins = releasePins(w, w.release);
    const r = await attempt({ ...(await w.bundle(0)), release: await releaseBundle(w, 1) }, pins);
    expect(r.code).toBe(ErrorCode.BundleEvidence);
    expect(r.message).toMatch(/statement\.release-key/);
    expect(r.message).toContain(toHex(operator.publicKey));
    // The same fleet with a pinned measurement and no release pin: nothing to compare the key with.
    expect((await attempt(await w.bundle(0), w.pins)).code).toBe("accepted");
  });

  it("a pinned measurement needs no release", async () => {
    const { w, key, b } = await setup();
    const pins = { ...releasePins(w, key), measurements: [toHex(MEASUREMENT)] };
    expect((await attempt(b, pins)).code).toBe("accepted");
  });
});

describe("release pins", () => {
  it("measurements may be empty only with a release key", () => {
    const w = world();
    const key = releaseKey();
    expect(() => parseTrustPins({ ...w.pins, measurements: [] })).toThrow(BkvError);
    const p = parseTrustPins(releasePins(w, key));
    expect(p.release).toEqual({ key: toHex(key.publicKey), namespace: RELEASES });
    expect(p.measurements).toEqual([]);
    for (const bad of [
      { key: "00", namespace: RELEASES },
      { key: toHex(key.publicKey), namespace: "" },
      { key: toHex(key.publicKey), namespace: w.pins.namespace },
      { key: toHex(new Uint8Array(32)), namespace: RELEASES },
      "yes",
    ])
      expect(() => parseTrustPins({ ...w.pins, measurements: [], release: bad })).toThrow(
        /trust pins: .*release/,
      );
  });

  it("the verified-artifact cache key depends on the release pin", () => {
    const w = world();
    const d = new Uint8Array(32).fill(1);
    const a = verifiedArtifactKey(releasePins(w, releaseKey()), d, d);
    const b = verifiedArtifactKey(releasePins(w, releaseKey()), d, d);
    const c = verifiedArtifactKey({ ...w.pins, measurements: [] }, d, d);
    expect(new Set([a, b, c]).size).toBe(3);
  });
});
