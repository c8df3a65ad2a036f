/**
 * The record tree end to end between its two sides: the host's SQLite store (record-store.ts)
 * proves, the HSM's code (hsm-core/src/record-tree.ts) verifies, computes new roots from proofs
 * alone and recomputes a whole tree from a stream. Random operations check that both sides always
 * agree; the attacks check that every way a host can lie about a record is refused as RECORD_PROOF.
 */
import { createHash, randomBytes } from "node:crypto";
import { hmacSha256, PartialTree, RecordTree, recordKey, StreamingRoot } from "@bkv/hsm-core";
import {
  bytesEqual,
  decodeRecordProof,
  ErrorCode,
  encodeRecordProof,
  isBkvError,
  keyPrefix,
  type RecordProof,
} from "@bkv/wire";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { RecordStore, type RecordWrite } from "../src/record-store.js";
import { prng } from "./seeded.js";

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

function expectProofError(f: () => unknown): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(isBkvError(caught, ErrorCode.RecordProof), String(caught)).toBe(true);
}

function streamRoot(tree: RecordTree, store: RecordStore): Uint8Array {
  const s = new StreamingRoot(tree);
  let after: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = store.scan(after, 7);
    if (chunk.length === 0) break;
    for (const r of chunk) s.add(r.key, r.valueHash);
    after = chunk.at(-1)!.key;
  }
  return s.root();
}

/** Keys for a small tree: 12 distinct prefixes of `depth` bits, so buckets hold several keys. */
function keyPool(depth: number, rnd: () => number, n: number): Uint8Array[] {
  const prefixes = Array.from({ length: 12 }, () => randomBytes(depth / 8));
  return Array.from({ length: n }, () => {
    const k = randomBytes(32);
    k.set(prefixes[Math.floor(rnd() * prefixes.length)]!);
    return new Uint8Array(k);
  });
}

describe("record tree: host store and HSM agree", () => {
  for (const [depth, keys, rounds, ops] of [
    [8, 40, 60, 5],
    [64, 40, 60, 5],
    [64, 400, 40, 30],
  ] as const) {
    it(`random writes at depth ${depth} over ${keys} keys: roots from proofs alone equal the host's root, and the stream's`, () => {
      const rnd = prng(depth * 7919 + keys);
      const tree = new RecordTree(sha256, depth);
      const db = new Database(":memory:");
      const store = new RecordStore(db, depth);
      expect(store.state().root).toEqual(tree.emptyRoot);
      // A binary tree whose every branch has two non-empty children: one branch fewer than buckets,
      // so no branch row outlives its branch.
      const branchRows = () => db.prepare("SELECT count(*) FROM tree_nodes").pluck().get() as number;
      const buckets = () => new Set([...model.keys()].map((hex) => hex.slice(0, depth / 4))).size;
      const pool =
        depth === 8
          ? keyPool(depth, rnd, keys)
          : Array.from({ length: keys }, () => new Uint8Array(randomBytes(32)));
      const model = new Map<string, Uint8Array>();
      let hostRoot = store.state().root;
      for (let round = 1; round <= rounds; round++) {
        // The HSM reads every key it will change (verified against hostRoot), then changes them.
        const partial = new PartialTree(tree, hostRoot);
        // What it holds is bounded by what it was shown and changed, not by the records.
        let bound = 1;
        const writes: RecordWrite[] = [];
        const n = 1 + Math.floor(rnd() * ops);
        for (let i = 0; i < n; i++) {
          const key = pool[Math.floor(rnd() * pool.length)]!;
          if (partial.get(key) === undefined) {
            const { blob, proof } = store.read(key);
            const vh = blob === null ? null : tree.valueHash(key, blob);
            const path = tree.verify(hostRoot, key, vh, proof);
            partial.absorb(path);
            bound += 2 * path.steps.length + 3;
          }
          bound += 2;
          // A proof of another key from the same base tree may come at any time (the host answers
          // reads in any order): taking it in never changes the newest root.
          if (rnd() < 0.3) {
            const other = pool[Math.floor(rnd() * pool.length)]!;
            const { blob, proof } = store.read(other);
            const before = partial.root();
            const path = tree.verify(
              hostRoot,
              other,
              blob === null ? null : tree.valueHash(other, blob),
              proof,
            );
            partial.absorb(path);
            bound += 2 * path.steps.length + 3;
            expect(partial.root()).toEqual(before);
          }
          const hex = Buffer.from(key).toString("hex");
          if (rnd() < 0.3 && partial.get(key) !== null) {
            partial.set(key, null);
            model.delete(hex);
            writes.push({ key, blob: null });
          } else {
            const blob = new Uint8Array(randomBytes(8 + Math.floor(rnd() * 40)));
            const vh = tree.valueHash(key, blob);
            partial.set(key, vh);
            model.set(hex, blob);
            writes.push({ key, blob, valueHash: vh });
          }
        }
        expect(partial.size).toBeLessThanOrEqual(bound);
        const hostAfter = store.apply(writes, round);
        expect(Buffer.from(hostAfter).toString("hex")).toBe(Buffer.from(partial.root()).toString("hex"));
        expect(store.state()).toEqual({ applied: round, root: hostAfter });
        expect(streamRoot(tree, store)).toEqual(hostAfter);
        expect(branchRows()).toBe(Math.max(0, buckets() - 1));
        hostRoot = hostAfter;
      }
      expect(store.count()).toBe(model.size);
      // Every key proves what the model says, present or absent.
      for (const key of pool) {
        const { blob, proof } = store.read(key);
        const want = model.get(Buffer.from(key).toString("hex")) ?? null;
        expect(blob === null ? null : Buffer.from(blob).toString("hex")).toBe(
          want === null ? null : Buffer.from(want).toString("hex"),
        );
        tree.verify(hostRoot, key, want === null ? null : tree.valueHash(key, want), proof);
      }
    });
  }

  it("record keys are HMACs of the user id: fixed per secret and user, different across both", () => {
    const a = recordKey(sha256, new Uint8Array(32).fill(1), "alice");
    expect(a).toEqual(recordKey(sha256, new Uint8Array(32).fill(1), "alice"));
    expect(a).not.toEqual(recordKey(sha256, new Uint8Array(32).fill(2), "alice"));
    expect(a).not.toEqual(recordKey(sha256, new Uint8Array(32).fill(1), "bob"));
    // RFC 4231 test case 2.
    expect(
      Buffer.from(
        hmacSha256(
          sha256,
          new TextEncoder().encode("Jefe"),
          new TextEncoder().encode("what do ya want for nothing?"),
        ),
      ).toString("hex"),
    ).toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });
});

describe("record tree: a host lying about records is refused (RECORD_PROOF)", () => {
  const tree = new RecordTree(sha256);
  function setup() {
    const store = new RecordStore(new Database(":memory:"));
    const keys = Array.from({ length: 30 }, () => new Uint8Array(randomBytes(32)));
    const blobs = keys.map(() => new Uint8Array(randomBytes(20)));
    const root = store.apply(
      keys.map((key, i) => ({ key, blob: blobs[i]!, valueHash: tree.valueHash(key, blobs[i]!) })),
      1,
    );
    return { store, keys, blobs, root };
  }

  it("the honest answer verifies", () => {
    const { store, keys, blobs, root } = setup();
    const { blob, proof } = store.read(keys[3]!);
    expect(blob).toEqual(blobs[3]);
    expect(tree.verify(root, keys[3]!, tree.valueHash(keys[3]!, blob!), proof).valueHash).not.toBeNull();
  });

  it("an old copy of a record with its old proof, after a committed change (a guess counted)", () => {
    const { store, keys, root } = setup();
    const old = store.read(keys[5]!);
    const next = new Uint8Array(randomBytes(20));
    const newRoot = store.apply(
      [{ key: keys[5]!, blob: next, valueHash: tree.valueHash(keys[5]!, next) }],
      2,
    );
    expect(bytesEqual(newRoot, root)).toBe(false);
    expectProofError(() => tree.verify(newRoot, keys[5]!, tree.valueHash(keys[5]!, old.blob!), old.proof));
    // The old record with the new proof does not verify either.
    const fresh = store.read(keys[5]!);
    expectProofError(() => tree.verify(newRoot, keys[5]!, tree.valueHash(keys[5]!, old.blob!), fresh.proof));
  });

  it("a wrong proof: a flipped sibling, a moved, dropped or added branch, truncated, trailing bytes", () => {
    const { store, keys, root } = setup();
    const { blob, proof } = store.read(keys[7]!);
    const vh = tree.valueHash(keys[7]!, blob!);
    const p = decodeRecordProof(proof);
    expect(p.path.length).toBeGreaterThan(1);
    expect(p.end.kind).toBe("bucket");
    const flipped = (b: Uint8Array) => b.map((x, j) => (j === 0 ? x ^ 1 : x));
    const variants: RecordProof[] = [];
    for (let i = 0; i < p.path.length; i++) {
      const at = (step: RecordProof["path"][number] | null) => {
        const path = p.path.slice();
        if (step === null) path.splice(i, 1);
        else path[i] = step;
        return { ...p, path };
      };
      const s = p.path[i]!;
      variants.push(at({ ...s, sibling: flipped(s.sibling) }));
      variants.push(at(null));
      // The same branch claimed one level deeper or shallower (where the order still holds).
      if (s.depth + 1 < (p.path[i + 1]?.depth ?? 64)) variants.push(at({ ...s, depth: s.depth + 1 }));
      if (s.depth - 1 > (p.path[i - 1]?.depth ?? -1)) variants.push(at({ ...s, depth: s.depth - 1 }));
    }
    // An extra branch below the path, with a made-up sibling.
    const deepest = p.path.at(-1)!.depth;
    if (deepest < 63)
      variants.push({ ...p, path: [...p.path, { depth: 63, sibling: new Uint8Array(32).fill(7) }] });
    // The end claimed empty, or given as another bucket.
    variants.push({ ...p, end: { kind: "bucket", entries: [{ key: keys[8]!, valueHash: vh }] } });
    for (const v of variants) expectProofError(() => tree.verify(root, keys[7]!, vh, encodeRecordProof(v)));
    expectProofError(() => tree.verify(root, keys[7]!, vh, { ...p, path: [], end: { kind: "empty" } }));
    expectProofError(() => tree.verify(root, keys[7]!, vh, proof.subarray(0, proof.length - 1)));
    expectProofError(() => tree.verify(root, keys[7]!, vh, new Uint8Array([...proof, 0])));
    // Depths out of order, and an end kind that does not exist, do not even decode.
    if (p.path.length >= 2) {
      const swapped = { ...p, path: [p.path[1]!, p.path[0]!, ...p.path.slice(2)] };
      expectProofError(() => tree.verify(root, keys[7]!, vh, encodeRecordProof(swapped)));
    }
    const bad = proof.slice();
    bad[1 + 33 * p.path.length] = 3;
    expectProofError(() => tree.verify(root, keys[7]!, vh, bad));
  });

  it("a proof of absence that hides a record: ending at a branch the key lies under, or above its bucket", () => {
    const { store, keys, root } = setup();
    const p = decodeRecordProof(store.read(keys[9]!).proof);
    // Cut the path at each branch and present that branch as where the key's path ends.
    for (let i = 0; i < p.path.length; i++) {
      const s = p.path[i]!;
      const below = p.path[i + 1];
      const cut: RecordProof = {
        path: p.path.slice(0, i),
        end: {
          kind: "branch",
          depth: s.depth,
          prefix: keyPrefix(keys[9]!, s.depth),
          left: s.sibling,
          right: below?.sibling ?? new Uint8Array(32),
        },
      };
      expectProofError(() => tree.verify(root, keys[9]!, null, cut));
    }
    // The key's own bucket shown without the key, as if it held none.
    expectProofError(() => tree.verify(root, keys[9]!, null, { ...p, end: { kind: "bucket", entries: [] } }));
  });

  it("another user's record and blob", () => {
    const { store, keys, root } = setup();
    const other = store.read(keys[1]!);
    // Bob's blob and proof served for Alice's key.
    expectProofError(() => tree.verify(root, keys[0]!, tree.valueHash(keys[0]!, other.blob!), other.proof));
    expectProofError(() => tree.verify(root, keys[0]!, tree.valueHash(keys[1]!, other.blob!), other.proof));
  });

  it("claiming no record exists for an existing user", () => {
    const { store, keys, root } = setup();
    const { proof } = store.read(keys[2]!);
    expectProofError(() => tree.verify(root, keys[2]!, null, proof));
    // A proof of absence of a key that does not exist, offered for one that does.
    const absent = store.read(new Uint8Array(randomBytes(32)));
    expectProofError(() => tree.verify(root, keys[2]!, null, absent.proof));
  });

  it("a proof for a record that was destroyed, and a whole tree restored from before", () => {
    const { store, keys, blobs, root } = setup();
    const before = store.read(keys[4]!);
    const newRoot = store.apply([{ key: keys[4]!, blob: null }], 2);
    expectProofError(() => tree.verify(newRoot, keys[4]!, tree.valueHash(keys[4]!, blobs[4]!), before.proof));
    // The host restores its old tree (same database contents as before the destroy).
    const restored = new RecordStore(new Database(":memory:"));
    expect(
      restored.apply(
        keys.map((key, i) => ({ key, blob: blobs[i]!, valueHash: tree.valueHash(key, blobs[i]!) })),
        1,
      ),
    ).toEqual(root);
    const r = restored.read(keys[4]!);
    expectProofError(() => tree.verify(newRoot, keys[4]!, tree.valueHash(keys[4]!, r.blob!), r.proof));
    // The honest answer now is absence.
    tree.verify(newRoot, keys[4]!, null, store.read(keys[4]!).proof);
  });

  it("a forged sync stream: missing, extra, old or reordered records give another root or are refused", () => {
    const { store, root } = setup();
    const all = store.scan(new Uint8Array(0), 1000);
    const rootOf = (rows: typeof all) => {
      const s = new StreamingRoot(tree);
      for (const r of rows) s.add(r.key, r.valueHash);
      return s.root();
    };
    expect(rootOf(all)).toEqual(root);
    expect(rootOf(all.filter((_, i) => i !== 10))).not.toEqual(root);
    const extra = {
      key: new Uint8Array(32).fill(0xff),
      blob: new Uint8Array(1),
      valueHash: new Uint8Array(32),
    };
    expect(rootOf([...all, extra])).not.toEqual(root);
    const stale = all.map((r, i) =>
      i === 3 ? { ...r, valueHash: tree.valueHash(r.key, new Uint8Array(5)) } : r,
    );
    expect(rootOf(stale)).not.toEqual(root);
    const swapped = all.slice();
    [swapped[4], swapped[5]] = [swapped[5]!, swapped[4]!];
    expectProofError(() => rootOf(swapped));
    expectProofError(() => rootOf([...all.slice(0, 3), all[2]!, ...all.slice(3)]));
  });
});

describe("record store: the bulk loader for benchmarks", () => {
  for (const depth of [8, 64]) {
    it(`at depth ${depth}, builds the same rows and root as writing the records one by one`, () => {
      const rnd = prng(depth);
      const tree = new RecordTree(sha256, depth);
      const keys =
        depth === 8
          ? keyPool(depth, rnd, 60) // buckets of several keys, within a proof's limit
          : Array.from({ length: 200 }, () => new Uint8Array(randomBytes(32)));
      const records = keys
        .map((key) => {
          const blob = new Uint8Array(randomBytes(12));
          return { key, blob, valueHash: tree.valueHash(key, blob) };
        })
        .sort((a, b) => Buffer.compare(a.key, b.key))
        .filter((r, i, all) => i === 0 || Buffer.compare(all[i - 1]!.key, r.key) !== 0);
      const oneByOne = new Database(":memory:");
      const bulk = new Database(":memory:");
      const a = new RecordStore(oneByOne, depth);
      const b = new RecordStore(bulk, depth);
      for (const r of records) a.apply([r], 1);
      const root = b.loadSorted(records, 1);
      expect(root).toEqual(a.state().root);
      expect(b.state()).toEqual({ applied: 1, root });
      const rows = (db: Database.Database) =>
        db.prepare("SELECT hex(pos) p, hex(hash) h, hex(l) l, hex(r) r FROM tree_nodes ORDER BY pos").all();
      expect(rows(bulk)).toEqual(rows(oneByOne));
      // And it goes on like any store: a write after the load gives the same root on both.
      const next = { key: records[5]!.key, blob: null };
      expect(b.apply([next], 2)).toEqual(a.apply([next], 2));
      for (const r of records.slice(0, 20)) {
        const { blob, proof } = b.read(r.key);
        tree.verify(b.state().root, r.key, blob === null ? null : tree.valueHash(r.key, blob), proof);
      }
    });
  }

  it("takes only an empty store and keys in strictly ascending order", () => {
    const tree = new RecordTree(sha256);
    const r = (n: number) => {
      const key = new Uint8Array(32).fill(n);
      return { key, blob: new Uint8Array(1), valueHash: tree.valueHash(key, new Uint8Array(1)) };
    };
    const store = new RecordStore(new Database(":memory:"));
    expect(() => store.loadSorted([r(2), r(1)], 1)).toThrow(/ascending/);
    expect(() => store.loadSorted([r(1), r(1)], 1)).toThrow(/ascending/);
    const filled = new RecordStore(new Database(":memory:"));
    filled.loadSorted([r(1)], 1);
    expect(() => filled.loadSorted([r(2)], 2)).toThrow(/empty store/);
  });
});
