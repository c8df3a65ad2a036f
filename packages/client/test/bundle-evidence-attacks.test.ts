/**
 * The vault operator's attacks on the client's trust in a fleet (issue 11): the log's /add checks
 * nothing, so the operator can log any artifact with any evidence digest, and hold keys of its own.
 * Each bundle below is properly logged, signed by the log and cosigned by the witnesses; each is
 * refused by its code before anything that depends on the PIN, and the stored checkpoint (and the
 * cache of verified artifacts) stays as it was.
 */
import {
  type CheckpointStore,
  memoryCheckpointStore,
  memoryVerifiedCache,
  type TrustPins,
  type VerifiedArtifactCache,
  verifyBundle,
} from "@bkv/client";
import { toBase64 } from "@bkv/tlog";
import { type BundleJson, ErrorCode, encodeArtifact, isBkvError, quorumOf } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NOW, vendorRoot, type World, world } from "./bundle-world.js";

async function code(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => "accepted",
    (err: unknown) => err,
  );
  return isBkvError(e) ? e.code : String(e);
}

/**
 * Verify `b` against a store that has seen the world's first (genuine) entry, and check that a
 * refusal leaves the store and the cache as they were.
 */
async function attempt(w: World, b: BundleJson, pins: TrustPins = w.pins): Promise<string> {
  const store: CheckpointStore = memoryCheckpointStore();
  const cache: VerifiedArtifactCache = memoryVerifiedCache();
  const seen = await store.load();
  const added: string[] = [];
  const spy: VerifiedArtifactCache = {
    has: (k) => cache.has(k),
    add: async (k) => {
      added.push(k);
      await cache.add(k);
    },
  };
  const result = await code(verifyBundle(b, pins, store, NOW, spy));
  if (result !== "accepted") {
    expect(await store.load()).toEqual(seen);
    expect(added).toEqual([]);
  }
  return result;
}

describe("the client verifies a fleet's evidence before it trusts an epoch", () => {
  it("an artifact with the operator's own keys and no evidence, or garbage as evidence", async () => {
    const w = world();
    const genuine = w.fleet();
    // The operator's laptop fleet: its own vault and signing keys; the artifact names no real HSMs.
    const laptop = w.fleet({ epoch: 2, vaultKey: new Uint8Array(32).fill(8) });
    const garbage = new Uint8Array(200).fill(0x5a);
    w.append(genuine);
    const none = w.append(laptop, { evidence: null, evidenceDigest: new Uint8Array(32).fill(7) });
    const junk = w.append(laptop, { evidence: garbage });
    expect(await attempt(w, await w.bundle(none))).toBe(ErrorCode.BundleEvidence);
    expect(await attempt(w, await w.bundle(junk))).toBe(ErrorCode.BundleEvidence);
    // The old check (counter-signature by the artifact's own key) would have accepted both.
    expect(await attempt(w, await w.bundle(0))).toBe("accepted");
  });

  it("an artifact presented with the evidence of another (genuine) fleet", async () => {
    const w = world();
    const other = w.fleet();
    const mine = w.fleet({ vaultKey: new Uint8Array(32).fill(8) });
    // The entry names the other fleet's (valid) evidence; the artifact is the operator's.
    const i = w.append(other, { artifact: mine.artifact, fleetSeed: mine.fleetSeed });
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleEvidence);
  });

  it("attestations to a vendor root the client does not pin", async () => {
    const w = world();
    const i = w.append(w.fleet({ root: vendorRoot("rogue") }));
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleEvidence);
  });

  it("a test vendor root counts only where the pins allow test roots", async () => {
    const w = world();
    const dev = vendorRoot("bkv dev", true);
    const i = w.append(w.fleet({ root: dev }));
    const pins = { ...w.pins, vendorRoots: [...w.pins.vendorRoots, dev.pin] };
    expect(await attempt(w, await w.bundle(i), pins)).toBe(ErrorCode.BundleEvidence);
    expect(await attempt(w, await w.bundle(i), { ...pins, allowTestRoots: true })).toBe("accepted");
  });

  it("a measurement the client does not pin", async () => {
    const w = world();
    const i = w.append(w.fleet({ measurement: new Uint8Array(32).fill(0xee) }));
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleMeasurement);
  });

  it("a guess limit above the pinned maximum (a genuine fleet made with 100), and one edited in", async () => {
    const w = world();
    const loose = w.append(w.fleet({ guessLimit: 100 }));
    expect(await attempt(w, await w.bundle(loose))).toBe(ErrorCode.BundlePolicy);
    expect(await attempt(w, await w.bundle(loose), { ...w.pins, maxGuessLimit: 100 })).toBe("accepted");
    // The artifact says 10, the evidence (signed by the members) says 100.
    const f = w.fleet({ guessLimit: 100 });
    const edited = w.append(f, {
      artifact: { ...f.artifact, policy: { ...f.artifact.policy, guessLimit: 10 } },
    });
    expect(await attempt(w, await w.bundle(edited), { ...w.pins, maxGuessLimit: 100 })).toBe(
      ErrorCode.BundleEvidence,
    );
  });

  it("a fleet of one HSM (N = 1), unless the pins allow small fleets (development)", async () => {
    const w = world();
    const i = w.append(w.fleet({ n: 1 }));
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleEvidence);
    expect(await attempt(w, await w.bundle(i), { ...w.pins, allowSmallFleet: true })).toBe("accepted");
    // An artifact claiming 3 members over evidence of 1 is no way around it.
    const one = w.fleet({ n: 1 });
    const claimed = { ...one.artifact, policy: { guessLimit: 10, n: 3, quorum: quorumOf(3) } };
    const j = w.append(one, { artifact: claimed });
    expect(await attempt(w, await w.bundle(j), { ...w.pins, allowSmallFleet: true })).toBe(
      ErrorCode.BundleEvidence,
    );
  });

  it("a genuine fleet's signing key with a swapped vault key", async () => {
    const w = world();
    const f = w.fleet();
    const swapped = {
      ...f.artifact,
      keys: f.artifact.keys.map((k) =>
        k.role === "vault-hpke" ? { ...k, key: new Uint8Array(32).fill(8) } : k,
      ),
    };
    // The fleet (which counter-signs what it is asked) counter-signed the swapped artifact.
    const i = w.append(f, { artifact: swapped });
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleEvidence);
  });

  it("a counter-signature by a key not in the verified statement", async () => {
    const w = world();
    const f = w.fleet();
    const i = w.append(f, { fleetSeed: new Uint8Array(32).fill(9) });
    expect(await attempt(w, await w.bundle(i))).toBe(ErrorCode.BundleNotCountersigned);
    // An artifact naming the operator's signing key does not match the statement in the first place.
    const own = {
      ...f.artifact,
      keys: f.artifact.keys.map((k) =>
        k.role === "fleet-signing" ? { ...k, key: ed25519.getPublicKey(new Uint8Array(32).fill(9)) } : k,
      ),
    };
    const j = w.append(f, { artifact: own, fleetSeed: new Uint8Array(32).fill(9) });
    expect(await attempt(w, await w.bundle(j))).toBe(ErrorCode.BundleEvidence);
  });

  it("evidence whose digest differs from the one the log entry names", async () => {
    const w = world();
    const f = w.fleet();
    const i = w.append(f);
    const b = await w.bundle(i);
    const other = w.fleet();
    expect(await attempt(w, { ...b, evidence: toBase64(other.evidence) })).toBe(ErrorCode.BundleEvidence);
    expect(await attempt(w, { ...b, evidence: "not base64!" })).toBe(ErrorCode.BundleEvidence);
  });

  it("evidence of a fleet that froze another namespace or another log key", async () => {
    const w = world();
    const f = w.fleet({ logKey: new Uint8Array(ed25519.getPublicKey(new Uint8Array(32).fill(4))) });
    expect(await attempt(w, await w.bundle(w.append(f)))).toBe(ErrorCode.BundleEvidence);
    const g = w.fleet({ namespace: "other.test/vault" });
    const j = w.append(g, {
      artifact: { ...g.artifact, namespace: w.pins.namespace },
      namespace: w.pins.namespace,
    });
    expect(await attempt(w, await w.bundle(j))).toBe(ErrorCode.BundleEvidence);
  });

  it("verified once per artifact: later bundles need no evidence, a new artifact does, and new pins verify again", async () => {
    const w = world();
    const f = w.fleet();
    const i = w.append(f);
    const store = memoryCheckpointStore();
    const cache = memoryVerifiedCache();
    expect(await code(verifyBundle(await w.bundle(i, undefined, false), w.pins, store, NOW, cache))).toBe(
      ErrorCode.BundleEvidence,
    );
    const first = await verifyBundle(await w.bundle(i), w.pins, store, NOW, cache);
    expect(first.evidenceVerified).toBe(true);
    const again = await verifyBundle(await w.bundle(i, undefined, false), w.pins, store, NOW, cache);
    expect(again.evidenceVerified).toBe(false);
    // Stricter pins: the artifact is verified again (and needs its evidence).
    const stricter = { ...w.pins, maxGuessLimit: 9 };
    expect(await code(verifyBundle(await w.bundle(i, undefined, false), stricter, store, NOW, cache))).toBe(
      ErrorCode.BundleEvidence,
    );
    expect(await code(verifyBundle(await w.bundle(i), stricter, store, NOW, cache))).toBe(
      ErrorCode.BundlePolicy,
    );
    // Same entry bytes but another artifact (the cache is by digest): not verified.
    const g = w.fleet({ vaultKey: new Uint8Array(32).fill(8) });
    const j = w.append(f, { artifact: g.artifact, fleetSeed: f.fleetSeed });
    const b = await w.bundle(j, undefined, false);
    b.consistency = { from: 1, proof: w.tree.consistencyProof(1, 2).map(toBase64) };
    // This device verified another artifact at this epoch: two fleets at one epoch, refused first.
    expect(await code(verifyBundle(b, w.pins, store, NOW, cache))).toBe(ErrorCode.BundleSplitView);
    // A device that has seen no epoch yet, sharing the cache: the new artifact still needs evidence.
    expect(await code(verifyBundle(b, w.pins, memoryCheckpointStore(), NOW, cache))).toBe(
      ErrorCode.BundleEvidence,
    );
    expect(encodeArtifact(g.artifact)).not.toEqual(f.artifactBytes);
    expect(sha256(f.evidence)).toHaveLength(32);
  });

  it("pins that are not complete are refused, never taken as 'accept'", async () => {
    const w = world();
    const i = w.append(w.fleet());
    const b = await w.bundle(i);
    for (const drop of ["vendorRoots", "measurements", "maxGuessLimit"] as const) {
      const { [drop]: _gone, ...partial } = w.pins;
      expect(await code(verifyBundle(b, partial as TrustPins, memoryCheckpointStore(), NOW))).toBe(
        ErrorCode.Invalid,
      );
    }
  });
});
