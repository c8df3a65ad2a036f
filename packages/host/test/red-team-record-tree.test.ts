/**
 * Red team of the record tree's compact format, playing the operator (DESIGN.md §2): the host
 * controls every byte the HSM is shown, and the HSM holds only a root. Every tree here is checked
 * against a reference built straight from the format's definition (wire/src/record-tree-format.ts,
 * a set of one bucket hashes to the bucket, of several to a branch at the bits all its keys share),
 * written independently of the host's store, the HSM's PartialTree and StreamingRoot.
 *
 * Depth-8 trees are used where buckets must fill (16 keys sharing a first byte); randomness is
 * seeded and every loop is bounded by a count.
 */
import { createHash } from "node:crypto";
import { PartialTree, RecordTree, StreamingRoot, type VerifiedPath } from "@bkv/hsm-core";
import {
  type BucketEntry,
  commonPrefixBits,
  compareKeys,
  decodeRecordProof,
  ErrorCode,
  encodeRecordProof,
  isBkvError,
  keyBit,
  MAX_BUCKET_ENTRIES,
  type ProofEnd,
  type RecordProof,
} from "@bkv/wire";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { RecordStore, type RecordWrite } from "../src/record-store.js";
import { prng } from "./seeded.js";

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function bytes(rnd: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

/** A key with the given first byte (depth-8 trees bucket by it), the rest seeded. */
function keyWith(rnd: () => number, first: number): Uint8Array {
  const k = bytes(rnd, 32);
  k[0] = first;
  return k;
}

/** Run f; return the error it threw (or undefined). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectCode(f: () => unknown, code: ErrorCode): void {
  const e = thrown(f);
  expect(isBkvError(e, code), String(e)).toBe(true);
}

/**
 * The root of a set of records straight from the format's definition: one bucket is its bucket
 * hash, several buckets a branch at the number of bits all keys share, split on the next bit.
 */
function referenceRoot(tree: RecordTree, model: Map<string, Uint8Array>): Uint8Array {
  const entries: BucketEntry[] = [...model].map(([k, valueHash]) => ({
    key: Uint8Array.from(Buffer.from(k, "hex")),
    valueHash,
  }));
  if (entries.length === 0) return tree.emptyRoot;
  const build = (es: BucketEntry[]): Uint8Array => {
    let t = tree.depth;
    for (const e of es) t = Math.min(t, commonPrefixBits(es[0]!.key, e.key, tree.depth));
    if (t >= tree.depth) return tree.bucketHash([...es].sort((a, b) => compareKeys(a.key, b.key)));
    const l = es.filter((e) => keyBit(e.key, t) === 0);
    const r = es.filter((e) => keyBit(e.key, t) === 1);
    return tree.branch(t, es[0]!.key, build(l), build(r));
  };
  return build(entries);
}

function streamOf(tree: RecordTree, model: Map<string, Uint8Array>): Uint8Array {
  const s = new StreamingRoot(tree);
  for (const k of [...model.keys()].sort()) s.add(Uint8Array.from(Buffer.from(k, "hex")), model.get(k)!);
  return s.root();
}

/** A store filled with the model's records (value hash only matters; the blob is the hash). */
function storeOf(depth: number, model: Map<string, Uint8Array>): RecordStore {
  const store = new RecordStore(new Database(":memory:"), depth);
  store.apply(
    [...model].map(([k, vh]) => ({ key: Uint8Array.from(Buffer.from(k, "hex")), blob: vh, valueHash: vh })),
    1,
  );
  return store;
}

/**
 * A depth-8 tree shaped to have deep paths and full buckets: first bytes chosen to share long
 * prefixes (0x00-0x03 differ only in the last two bits), some buckets of exactly 16 keys.
 */
function adversarialModel(rnd: () => number, tree: RecordTree): Map<string, Uint8Array> {
  const model = new Map<string, Uint8Array>();
  const sizes: [number, number][] = [
    [0x00, 16],
    [0x01, 1],
    [0x02, 3],
    [0x03, 16],
    [0x10, 2],
    [0x80, 1],
    [0xc0, 16],
    [0xc1, 5],
    [0xff, 1],
  ];
  for (const [first, n] of sizes) {
    for (let i = 0; i < n; i++) {
      const k = keyWith(rnd, first);
      model.set(hex(k), tree.valueHash(k, bytes(rnd, 9)));
    }
  }
  return model;
}

describe("red team: RecordTree.verify accepts only what the tree under the root holds", () => {
  const tree = new RecordTree(sha256, 8);

  function fixture(seed: number) {
    const rnd = prng(seed);
    const model = adversarialModel(rnd, tree);
    const store = storeOf(8, model);
    const root = store.state().root;
    expect(root).toEqual(referenceRoot(tree, model));
    const present = [...model.keys()].map((k) => Uint8Array.from(Buffer.from(k, "hex")));
    // Absent keys: in a full bucket, in a bucket of others, under a branch, beside everything.
    const absent = [0x00, 0x03, 0xc1, 0x01, 0x04, 0x08, 0x7f, 0xc2, 0xfe, 0x11].map((f) => keyWith(rnd, f));
    const truth = (k: Uint8Array) => model.get(hex(k)) ?? null;
    return { rnd, model, store, root, present, absent, truth };
  }

  /** Verify; on acceptance, the answer must be the truth. Returns whether it was accepted. */
  function accepted(
    root: Uint8Array,
    key: Uint8Array,
    vh: Uint8Array | null,
    proof: Uint8Array | RecordProof,
    truth: Uint8Array | null,
  ): boolean {
    let path: VerifiedPath;
    try {
      path = tree.verify(root, key, vh, proof);
    } catch (e) {
      expect(isBkvError(e, ErrorCode.RecordProof), String(e)).toBe(true);
      return false;
    }
    expect(vh === null ? null : hex(vh)).toBe(truth === null ? null : hex(truth));
    expect(path.valueHash).toBe(vh);
    return true;
  }

  it("every honest proof verifies, present or absent, including in full buckets", () => {
    const { store, root, present, absent, truth } = fixture(1);
    for (const k of [...present, ...absent]) {
      expect(accepted(root, k, truth(k), store.read(k).proof, truth(k))).toBe(true);
    }
  });

  it("holds: any key's honest proof, offered for any other key with any claimed value, never lies", () => {
    const { store, root, present, absent, truth, model } = fixture(2);
    const keys = [...present, ...absent];
    const proofs = keys.map((k) => store.read(k).proof);
    const values = [...model.values()].slice(0, 6);
    let yes = 0;
    for (const k of keys) {
      for (const p of proofs) {
        for (const vh of [truth(k), null, ...values]) if (accepted(root, k, vh, p, truth(k))) yes++;
      }
    }
    // Only a key's own proof with its own value passes, plus proofs of absence that are valid for
    // several absent keys at once (the same end covers them): never a present key's.
    expect(yes).toBeGreaterThanOrEqual(keys.length);
  });

  it("holds: the path cut at any branch and ended at any real node of the tree, as bucket or branch", () => {
    const { store, root, present, absent, truth, model } = fixture(3);
    // Every node of the real tree: the branch rows (depth, prefix, children) and the buckets.
    const db = (store as unknown as { db: Database.Database }).db;
    const rows = db.prepare("SELECT pos, l, r FROM tree_nodes").all() as {
      pos: Buffer;
      l: Buffer;
      r: Buffer;
    }[];
    const branchEnds: ProofEnd[] = rows.map((row) => ({
      kind: "branch",
      depth: row.pos[0]!,
      prefix: new Uint8Array(row.pos.subarray(1)),
      left: new Uint8Array(row.l),
      right: new Uint8Array(row.r),
    }));
    const buckets = new Map<number, BucketEntry[]>();
    for (const [k, valueHash] of [...model].sort()) {
      const key = Uint8Array.from(Buffer.from(k, "hex"));
      buckets.set(key[0]!, [...(buckets.get(key[0]!) ?? []), { key, valueHash }]);
    }
    let tried = 0;
    for (const k of [...present, ...absent]) {
      const honest = decodeRecordProof(store.read(k).proof, 8);
      const ends: ProofEnd[] = [{ kind: "empty" }, ...branchEnds];
      for (const b of buckets.values()) {
        ends.push({ kind: "bucket", entries: b });
        ends.push({ kind: "bucket", entries: b.filter((e) => compareKeys(e.key, k) !== 0) });
        ends.push({ kind: "bucket", entries: b.slice(1) });
      }
      for (let cut = 0; cut <= honest.path.length; cut++) {
        for (const end of ends) {
          for (const vh of [truth(k), null, model.values().next().value!]) {
            const proof: RecordProof = { path: honest.path.slice(0, cut), end };
            accepted(root, k, vh, proof, truth(k));
            let bytesOk: Uint8Array | null = null;
            try {
              bytesOk = encodeRecordProof(proof);
            } catch {
              // not encodable (e.g. a bucket of 17): the object form above was still tried
            }
            if (bytesOk !== null) accepted(root, k, vh, bytesOk, truth(k));
            tried++;
          }
        }
      }
    }
    expect(tried).toBeGreaterThan(1000);
  });

  it("holds: proofs stitched from pieces of honest proofs for other keys (seeded, 20,000 tries)", () => {
    const { rnd, store, root, present, absent, truth, model } = fixture(4);
    const keys = [...present, ...absent];
    const honest = keys.map((k) => decodeRecordProof(store.read(k).proof, 8));
    const steps = honest.flatMap((p) => p.path);
    const ends = honest.map((p) => p.end);
    const values = [...model.values()];
    let ok = 0;
    for (let i = 0; i < 20_000; i++) {
      const k = pick(rnd, keys);
      const own = honest[keys.indexOf(k)]!;
      // Half the time start from the key's own honest path and swap one piece; else random pieces.
      let path = own.path.slice();
      if (rnd() < 0.5) {
        path = Array.from({ length: Math.floor(rnd() * 5) }, () => pick(rnd, steps));
        path.sort((a, b) => a.depth - b.depth);
        path = path.filter((s, j) => j === 0 || s.depth !== path[j - 1]!.depth);
      } else if (path.length > 0) path[Math.floor(rnd() * path.length)] = pick(rnd, steps);
      const end = rnd() < 0.5 ? own.end : pick(rnd, ends);
      const vh = rnd() < 0.4 ? truth(k) : rnd() < 0.5 ? null : pick(rnd, values);
      if (accepted(root, k, vh, encodeRecordProof({ path, end }), truth(k))) ok++;
    }
    expect(ok).toBeGreaterThan(0);
  });

  it("named lies: absence for a present key, presence for an absent one, the empty tree, equal depths", () => {
    const { store, root, present, absent, truth } = fixture(5);
    const k = present.find((x) => x[0] === 0x00)!; // in a full bucket
    const p = decodeRecordProof(store.read(k).proof, 8);
    expect(p.end.kind === "bucket" && p.end.entries.length).toBe(15);
    // Its bucket without it, claimed absent.
    expectCode(() => tree.verify(root, k, null, p), ErrorCode.RecordProof);
    // The empty tree, for a key present and for one absent.
    expectCode(
      () => tree.verify(root, k, truth(k), { path: [], end: { kind: "empty" } }),
      ErrorCode.RecordProof,
    );
    expectCode(
      () => tree.verify(root, absent[4]!, null, { path: [], end: { kind: "empty" } }),
      ErrorCode.RecordProof,
    );
    // An absent key's honest proof of absence, with a value claimed.
    const a = store.read(absent[4]!).proof;
    expectCode(() => tree.verify(root, absent[4]!, truth(k), a), ErrorCode.RecordProof);
    // The same depth twice on the path: refused when decoding, and as an object it cannot hash right.
    const twice: RecordProof = { path: [p.path[0]!, ...p.path], end: p.end };
    expectCode(() => tree.verify(root, k, truth(k), encodeRecordProof(twice)), ErrorCode.RecordProof);
    expectCode(() => tree.verify(root, k, truth(k), twice), ErrorCode.RecordProof);
  });

  it("named lies: an end branch with prefix bits past its depth, a bucket of 17, a branch given as a bucket", () => {
    const { store, root, absent, truth } = fixture(6);
    // 0x08 lies beside the subtree of 0x00-0x03 (0000 00xx), which the path ends at as a branch.
    const k = absent[5]!;
    expect(k[0]).toBe(0x08);
    const p = decodeRecordProof(store.read(k).proof, 8);
    expect(p.end.kind).toBe("branch");
    if (p.end.kind !== "branch") return;
    tree.verify(root, k, null, encodeRecordProof(p));
    for (let bit = p.end.depth; bit < 8; bit++) {
      const dirty = { ...p.end, prefix: p.end.prefix.map((b) => b | (0x80 >> bit)) };
      const bad = encodeRecordProof({ path: p.path, end: dirty });
      expectCode(() => tree.verify(root, k, null, bad), ErrorCode.RecordProof);
    }
    // The end branch's children offered as a bucket of one entry (key = left, value = right).
    const asBucket: RecordProof = {
      path: p.path,
      end: { kind: "bucket", entries: [{ key: p.end.left, valueHash: p.end.right }] },
    };
    expectCode(() => tree.verify(root, k, null, asBucket), ErrorCode.RecordProof);
    // A bucket of 17 entries does not decode, and as an object is refused for its size.
    const big: BucketEntry[] = Array.from({ length: 17 }, (_, i) => {
      const key = new Uint8Array(32);
      key[31] = i + 1;
      return { key, valueHash: new Uint8Array(32).fill(i) };
    });
    const full = { path: [], end: { kind: "bucket" as const, entries: big } };
    expect(() => encodeRecordProof(full)).not.toThrow();
    expectCode(
      () => tree.verify(root, new Uint8Array(32), null, encodeRecordProof(full)),
      ErrorCode.RecordProof,
    );
    expectCode(() => tree.verify(root, new Uint8Array(32), null, full), ErrorCode.RecordProof);
    expect(truth(k)).toBeNull();
  });

  it("the empty tree: only absence verifies, and only with the empty end", () => {
    const k = new Uint8Array(32).fill(3);
    const empty = tree.emptyRoot;
    expect(
      tree.verify(empty, k, null, encodeRecordProof({ path: [], end: { kind: "empty" } })).valueHash,
    ).toBeNull();
    const vh = tree.valueHash(k, new Uint8Array(1));
    expectCode(() => tree.verify(empty, k, vh, { path: [], end: { kind: "empty" } }), ErrorCode.RecordProof);
    expectCode(
      () => tree.verify(empty, k, vh, { path: [], end: { kind: "bucket", entries: [] } }),
      ErrorCode.RecordProof,
    );
    expectCode(
      () => tree.verify(empty, k, null, { path: [], end: { kind: "bucket", entries: [] } }),
      ErrorCode.RecordProof,
    );
  });
});

describe("red team: PartialTree gives the root an honest rebuild gives", () => {
  const tree = new RecordTree(sha256, 8);

  it("a verified proof given as an object with junk past its end branch's depth does not skew later roots", () => {
    const rnd = prng(11);
    const model = adversarialModel(rnd, tree);
    const store = storeOf(8, model);
    const base = store.state().root;
    // 0x08's path ends at the branch over 0x00-0x03 (depth 6, prefix 000000).
    const k = keyWith(rnd, 0x08);
    const p = decodeRecordProof(store.read(k).proof, 8);
    if (p.end.kind !== "branch") throw new Error("fixture: expected an end branch");
    // The same hash (bits past the depth are not hashed) with bit 6 set: the left child's keys
    // would be taken to have bit 6 = 1.
    const junk: RecordProof = { path: p.path, end: { ...p.end, prefix: p.end.prefix.map((b) => b | 0x02) } };
    let path: VerifiedPath | undefined;
    const e = thrown(() => {
      path = tree.verify(base, k, null, junk);
    });
    if (e !== undefined) {
      expect(isBkvError(e, ErrorCode.RecordProof), String(e)).toBe(true);
      return;
    }
    const partial = new PartialTree(tree, base);
    partial.absorb(path!);
    // A key under the left child (0x01, whose bucket holds one key): its honest proof.
    const inLeft = keyWith(rnd, 0x01);
    const q = store.read(inLeft);
    partial.absorb(tree.verify(base, inLeft, null, q.proof));
    const vh = tree.valueHash(inLeft, new Uint8Array(3));
    partial.set(inLeft, vh);
    model.set(hex(inLeft), vh);
    expect(hex(partial.root())).toBe(hex(referenceRoot(tree, model)));
  });

  it("a verified proof given as an object with a fractional depth is refused", () => {
    const rnd = prng(12);
    const model = adversarialModel(rnd, tree);
    const store = storeOf(8, model);
    const base = store.state().root;
    const k = [...model.keys()]
      .map((x) => Uint8Array.from(Buffer.from(x, "hex")))
      .find((x) => x[0] === 0x02)!;
    const p = decodeRecordProof(store.read(k).proof, 8);
    const last = p.path.at(-1)!;
    const odd: RecordProof = {
      path: [...p.path.slice(0, -1), { ...last, depth: last.depth + 0.5 }],
      end: p.end,
    };
    expectCode(() => tree.verify(base, k, model.get(hex(k))!, odd), ErrorCode.RecordProof);
  });

  /**
   * One adversarial run: a base tree, then a random interleaving of proofs (for any key, present or
   * absent, in any order, repeated, for keys already written) and writes (new keys, changes,
   * removals emptying buckets and lifting their siblings, a 17th key into a full bucket). After each
   * write the partial root must equal the reference root of the records so far.
   */
  function run(
    seed: number,
    steps: number,
    tree: RecordTree,
  ): { writes: number; refusedFull: number; needProof: number } {
    const rnd = prng(seed);
    const bucketOf = (k: string) => k.slice(0, tree.depth / 4);
    // At depth 8 a group is a first byte. At depth 64 all keys share their first seven bytes but
    // for one bit of the third, and a group is the eighth byte: branches sit at depths 17 and 56-63.
    const keyWith = (rnd: () => number, f: number): Uint8Array => {
      const k = bytes(rnd, 32);
      if (tree.depth === 8) k[0] = f;
      else {
        k.set([0x5a, 0x5a, f & 0x40 ? 0x5a : 0x1a, 0x5a, 0x5a, 0x5a, 0x5a, f]);
      }
      return k;
    };
    const firsts = [0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x10, 0x40, 0x80, 0x81, 0xc0, 0xfe, 0xff];
    const pool: Uint8Array[] = [];
    for (const f of firsts) {
      const n = 12 + Math.floor(rnd() * 12); // up to 23 keys for one bucket of at most 16
      for (let i = 0; i < n; i++) pool.push(keyWith(rnd, f));
    }
    const model = new Map<string, Uint8Array>();
    // Some runs start from the empty tree, or from a tree of one bucket (the root is that bucket).
    const shape = seed % 4;
    for (const k of pool) {
      if (shape === 0 || (shape === 1 && k[tree.depth / 8 - 1] !== 0x40) || rnd() < 0.2) continue;
      const sameBucket = [...model.keys()].filter((x) => bucketOf(x) === bucketOf(hex(k))).length;
      if (sameBucket < MAX_BUCKET_ENTRIES) model.set(hex(k), tree.valueHash(k, bytes(rnd, 5)));
    }
    const store = storeOf(tree.depth, model);
    const base = store.state().root;
    expect(base).toEqual(referenceRoot(tree, model));
    const partial = new PartialTree(tree, base);
    const writes: RecordWrite[] = [];
    let refusedFull = 0;
    let needProof = 0;
    const absorb = (k: Uint8Array) => {
      const { blob, proof } = store.read(k); // always the base tree: the store is written at the end
      const before = partial.root();
      partial.absorb(tree.verify(base, k, blob === null ? null : blob, proof));
      expect(partial.root()).toEqual(before);
    };
    for (let i = 0; i < steps; i++) {
      const k = pick(rnd, pool);
      if (rnd() < 0.4) {
        absorb(k);
        continue;
      }
      const vh = rnd() < 0.35 ? null : tree.valueHash(k, bytes(rnd, 6));
      const known = partial.get(k);
      const before = partial.root();
      const e = thrown(() => partial.set(k, vh));
      if (e !== undefined) {
        expect(isBkvError(e), String(e)).toBe(true);
        expect(partial.root()).toEqual(before);
        if (isBkvError(e, ErrorCode.Corrupt)) {
          // No proof held for this key: only when its path is not known.
          expect(known).toBeUndefined();
          needProof++;
        } else {
          expect(isBkvError(e, ErrorCode.Invalid), String(e)).toBe(true);
          refusedFull++;
        }
        continue;
      }
      expect(known).not.toBeUndefined();
      if (vh === null) model.delete(hex(k));
      else model.set(hex(k), vh);
      writes.push(vh === null ? { key: k, blob: null } : { key: k, blob: vh, valueHash: vh });
      expect(hex(partial.root())).toBe(hex(referenceRoot(tree, model)));
      expect(partial.get(k) === null ? null : hex(partial.get(k) as Uint8Array)).toBe(
        vh === null ? null : hex(vh),
      );
    }
    // The host applies the same writes: same root, and the stream over its records agrees.
    const after = store.apply(writes, 2);
    expect(hex(after)).toBe(hex(partial.root()));
    expect(hex(streamOf(tree, model))).toBe(hex(after));
    // Every key reads back as the model says, and the proof verifies against the new root.
    for (const k of pool) {
      const { blob, proof } = store.read(k);
      const want = model.get(hex(k)) ?? null;
      expect(blob === null ? null : hex(blob)).toBe(want === null ? null : hex(want));
      tree.verify(after, k, want, proof);
    }
    return { writes: writes.length, refusedFull, needProof };
  }

  for (const depth of [8, 64]) {
    it(`holds: 14 seeded runs of interleaved proofs and writes at depth ${depth}, with full buckets`, () => {
      const t = new RecordTree(sha256, depth);
      let writes = 0;
      let refusedFull = 0;
      let needProof = 0;
      for (let seed = 100; seed < 114; seed++) {
        const r = run(seed + depth, 130, t);
        writes += r.writes;
        refusedFull += r.refusedFull;
        needProof += r.needProof;
      }
      // The runs did reach what they are meant to: many writes, full buckets, unproven keys.
      expect(writes).toBeGreaterThan(500);
      expect(refusedFull).toBeGreaterThan(0);
      expect(needProof).toBeGreaterThan(0);
    });
  }

  it("holds: one partial tree kept across rounds takes proofs against each newer root the host reaches", () => {
    // The host applies each round's writes; the next round's proofs come from its new tree. The
    // partial tree is never rebuilt: what it holds opaque is unchanged in the new tree too.
    let rounds = 0;
    for (let seed = 0; seed < 8; seed++) {
      const rnd = prng(700 + seed);
      const model = adversarialModel(rnd, tree);
      const store = storeOf(8, model);
      const partial = new PartialTree(tree, store.state().root);
      const pool: Uint8Array[] = [...model.keys()].map((x) => Uint8Array.from(Buffer.from(x, "hex")));
      for (const f of [0x00, 0x04, 0x10, 0x11, 0x7f, 0xc0, 0xc1, 0xfe]) pool.push(keyWith(rnd, f));
      for (let round = 2; round < 12; round++) {
        const hostRoot = store.state().root;
        expect(partial.root()).toEqual(hostRoot);
        const writes: RecordWrite[] = [];
        for (let i = 0; i < 4; i++) {
          const k = pick(rnd, pool);
          if (partial.get(k) === undefined || rnd() < 0.3) {
            const { blob, proof } = store.read(k);
            partial.absorb(tree.verify(hostRoot, k, blob, proof));
          }
          const vh = rnd() < 0.3 ? null : tree.valueHash(k, bytes(rnd, 4));
          if (thrown(() => partial.set(k, vh)) !== undefined) continue; // a full bucket
          if (vh === null) model.delete(hex(k));
          else model.set(hex(k), vh);
          writes.push(vh === null ? { key: k, blob: null } : { key: k, blob: vh, valueHash: vh });
          expect(hex(partial.root())).toBe(hex(referenceRoot(tree, model)));
        }
        expect(hex(store.apply(writes, round))).toBe(hex(partial.root()));
        rounds++;
      }
    }
    expect(rounds).toBe(80);
  });

  it("holds: taking in the same proofs again and again does not grow the partial tree", () => {
    const rnd = prng(23);
    const model = adversarialModel(rnd, tree);
    const store = storeOf(8, model);
    const base = store.state().root;
    const partial = new PartialTree(tree, base);
    const keys: Uint8Array[] = [...model.keys()]
      .map((x) => Uint8Array.from(Buffer.from(x, "hex")))
      .slice(0, 10);
    keys.push(keyWith(rnd, 0x08), keyWith(rnd, 0x7f));
    const paths = keys.map((k) => tree.verify(base, k, model.get(hex(k)) ?? null, store.read(k).proof));
    for (const p of paths) partial.absorb(p);
    const size = partial.size;
    for (let i = 0; i < 200; i++) partial.absorb(pick(rnd, paths));
    expect(partial.size).toBe(size);
    expect(partial.root()).toEqual(base);
  });

  it("holds: removals that lift an opaque sibling, then keys beside it and under it", () => {
    const rnd = prng(21);
    const model = new Map<string, Uint8Array>();
    // 0x00 alone on the left; on the right a deep subtree 0x80-0x83 the HSM never sees inside.
    const lone = keyWith(rnd, 0x00);
    model.set(hex(lone), tree.valueHash(lone, Uint8Array.of(1)));
    for (const f of [0x80, 0x81, 0x82, 0x83]) {
      const k = keyWith(rnd, f);
      model.set(hex(k), tree.valueHash(k, Uint8Array.of(f)));
    }
    const store = storeOf(8, model);
    const base = store.state().root;
    const partial = new PartialTree(tree, base);
    partial.absorb(tree.verify(base, lone, model.get(hex(lone))!, store.read(lone).proof));
    // Remove the lone key: the right subtree (opaque, known to share bit 0 = 1) becomes the root.
    partial.set(lone, null);
    model.delete(hex(lone));
    expect(partial.root()).toEqual(referenceRoot(tree, model));
    // A key on the old left side goes beside the opaque root without any proof.
    const left = keyWith(rnd, 0x40);
    partial.set(left, tree.valueHash(left, Uint8Array.of(2)));
    model.set(hex(left), tree.valueHash(left, Uint8Array.of(2)));
    expect(partial.root()).toEqual(referenceRoot(tree, model));
    // A key under the opaque's known bit but beside its real prefix (1000 00xx): needs a proof,
    // and with the base proof lands where a rebuild puts it.
    const beside = keyWith(rnd, 0xa0);
    expectCode(() => partial.set(beside, new Uint8Array(32).fill(3)), ErrorCode.Corrupt);
    partial.absorb(tree.verify(base, beside, null, store.read(beside).proof));
    const vh = tree.valueHash(beside, Uint8Array.of(3));
    partial.set(beside, vh);
    model.set(hex(beside), vh);
    expect(partial.root()).toEqual(referenceRoot(tree, model));
  });

  it("a proof verified against another root than the base is refused (typed), never folded in", () => {
    const rnd = prng(22);
    const model = adversarialModel(rnd, tree);
    const store = storeOf(8, model);
    const base = store.state().root;
    const partial = new PartialTree(tree, base);
    // An older tree: the operator's copy from before some writes, with one record different.
    const older = new Map(model);
    const k = [...model.keys()][3]!;
    older.set(k, tree.valueHash(Uint8Array.from(Buffer.from(k, "hex")), Uint8Array.of(9)));
    const oldStore = storeOf(8, older);
    const key = Uint8Array.from(Buffer.from(k, "hex"));
    const oldPath = tree.verify(oldStore.state().root, key, older.get(k)!, oldStore.read(key).proof);
    expectCode(() => partial.absorb(oldPath), ErrorCode.Corrupt);
    expect(partial.root()).toEqual(base);
    expect(partial.get(key)).toBeUndefined();
  });
});

describe("red team: StreamingRoot and the host's store", () => {
  const tree = new RecordTree(sha256, 8);

  it("holds: the stream's root is the reference root for 300 seeded sets, and no two sets share one", () => {
    const rnd = prng(31);
    const seen = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const model = new Map<string, Uint8Array>();
      const n = Math.floor(rnd() * 40);
      for (let j = 0; j < n; j++) {
        // Few first bytes, so buckets fill and share long prefixes.
        const k = keyWith(rnd, pick(rnd, [0x00, 0x01, 0x02, 0x40, 0x41, 0x80, 0xff]));
        if ([...model.keys()].filter((x) => x.startsWith(hex(k).slice(0, 2))).length < MAX_BUCKET_ENTRIES)
          model.set(hex(k), tree.valueHash(k, Uint8Array.of(j & 3)));
      }
      const root = hex(streamOf(tree, model));
      expect(root).toBe(hex(referenceRoot(tree, model)));
      const set = [...model]
        .map(([k, v]) => k + hex(v))
        .sort()
        .join();
      expect(seen.get(root) ?? set).toBe(set);
      seen.set(root, set);
    }
    expect(seen.size).toBeGreaterThan(250);
  });

  it("a 17th record in a bucket, keys out of order or repeated: refused by the stream", () => {
    const rnd = prng(32);
    const s = new StreamingRoot(tree);
    const keys = Array.from({ length: 17 }, () => keyWith(rnd, 0x42)).sort(compareKeys);
    for (const k of keys.slice(0, 16)) s.add(k, new Uint8Array(32));
    expectCode(() => s.add(keys[16]!, new Uint8Array(32)), ErrorCode.RecordProof);
    const t = new StreamingRoot(tree);
    t.add(keys[5]!, new Uint8Array(32));
    expectCode(() => t.add(keys[5]!, new Uint8Array(32)), ErrorCode.RecordProof);
    expectCode(() => t.add(keys[4]!, new Uint8Array(32)), ErrorCode.RecordProof);
    expectCode(() => t.add(keys[6]!.subarray(0, 31), new Uint8Array(32)), ErrorCode.RecordProof);
  });

  it("a root taken mid-stream ends the stream: the same root again, and no later records folded into another", () => {
    const rnd = prng(34);
    const keys = Array.from({ length: 6 }, () => keyWith(rnd, 0x42)).sort(compareKeys);
    const model = new Map(keys.map((k) => [hex(k), tree.valueHash(k, k.subarray(0, 3))]));
    const s = new StreamingRoot(tree);
    for (const k of keys.slice(0, 5)) s.add(k, model.get(hex(k))!);
    const mid = s.root();
    expect(s.root()).toEqual(mid);
    // Going on would give the root of the sixth record alone, a tree without the first five.
    expectCode(() => s.add(keys[5]!, model.get(hex(keys[5]!))!), ErrorCode.Invalid);
    expect(s.root()).toEqual(mid);
    model.delete(hex(keys[5]!));
    expect(mid).toEqual(referenceRoot(tree, model));
  });

  it("PartialTree.set refuses a key or value hash that is not 32 bytes, and changes nothing", () => {
    const partial = new PartialTree(tree, tree.emptyRoot);
    const k = new Uint8Array(32);
    partial.absorb(
      tree.verify(tree.emptyRoot, k, null, encodeRecordProof({ path: [], end: { kind: "empty" } })),
    );
    const root = partial.set(k, new Uint8Array(32).fill(1));
    expectCode(() => partial.set(new Uint8Array(31).fill(0xff), new Uint8Array(32)), ErrorCode.Invalid);
    expectCode(() => partial.set(new Uint8Array(33), new Uint8Array(32)), ErrorCode.Invalid);
    expectCode(() => partial.set(k, new Uint8Array(5)), ErrorCode.Invalid);
    expect(partial.root()).toEqual(root);
    expect(partial.get(k)).toEqual(new Uint8Array(32).fill(1));
  });

  it("holds: 30 seeded write sequences on the host's store keep its root the reference root and every proof valid", () => {
    for (let seed = 0; seed < 30; seed++) {
      const rnd = prng(400 + seed);
      const store = new RecordStore(new Database(":memory:"), 8);
      const model = new Map<string, Uint8Array>();
      const pool = Array.from({ length: 50 }, () =>
        keyWith(rnd, pick(rnd, [0x00, 0x01, 0x03, 0x07, 0x70, 0x80, 0xfe])),
      );
      for (let batch = 1; batch <= 25; batch++) {
        const writes: RecordWrite[] = [];
        // Batches repeat keys, remove absent keys, empty buckets and fill them again.
        for (let i = 0; i < 1 + Math.floor(rnd() * 6); i++) {
          const k = pick(rnd, pool);
          const bucket = [...model.keys()].filter((x) => x.startsWith(hex(k).slice(0, 2)));
          if (rnd() < 0.35) {
            writes.push({ key: k, blob: null });
            model.delete(hex(k));
          } else if (model.has(hex(k)) || bucket.length < MAX_BUCKET_ENTRIES) {
            const vh = tree.valueHash(k, bytes(rnd, 4));
            writes.push({ key: k, blob: vh, valueHash: vh });
            model.set(hex(k), vh);
          }
        }
        const root = store.apply(writes, batch);
        expect(hex(root)).toBe(hex(referenceRoot(tree, model)));
        expect(hex(streamOf(tree, model))).toBe(hex(root));
      }
      for (const k of pool) {
        const want = model.get(hex(k)) ?? null;
        expect(tree.verify(store.state().root, k, want, store.read(k).proof).valueHash).toEqual(want);
      }
    }
  });

  it("a host that puts a 17th record in a bucket gets no proof the HSM takes for any key there", () => {
    const rnd = prng(33);
    const store = new RecordStore(new Database(":memory:"), 8);
    const keys = Array.from({ length: 17 }, () => keyWith(rnd, 0x42));
    const writes = keys.map((key) => ({
      key,
      blob: new Uint8Array(1),
      valueHash: tree.valueHash(key, Uint8Array.of(1)),
    }));
    const root = store.apply(writes, 1);
    for (const k of [...keys, keyWith(rnd, 0x42)]) {
      const { blob, proof } = store.read(k);
      expectCode(
        () => tree.verify(root, k, blob === null ? null : tree.valueHash(k, Uint8Array.of(1)), proof),
        ErrorCode.RecordProof,
      );
    }
    expectCode(
      () => streamOf(tree, new Map(writes.map((w) => [hex(w.key), w.valueHash]))),
      ErrorCode.RecordProof,
    );
  });
});
