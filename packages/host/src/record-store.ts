/**
 * The host's copy of the record tree (format: wire/src/record-tree-format.ts), in SQLite beside the
 * sealed log: per record key its sealed blob (the host cannot open it) and value hash, the hashes of
 * the tree's branch nodes (both children non-empty, about one per record), the root and the log
 * index the tree reflects. Writes happen inside the caller's transaction, so the tree and the log
 * entries it reflects are stored together. Reads return the blob and a proof against the root; the
 * HSM checks every proof, so nothing here is trusted, only kept.
 *
 * Each branch row also keeps the hashes of its two children at the depth just below it (each
 * child's own top, a deeper branch or a lone bucket, folded up with empty siblings), so the common
 * reads and writes need no folding and no range queries: the branch rows on a key's path come from
 * one lookup of its 64 positions, and a proof of a stored record is their children's hashes and
 * the record's bucket. Only a key that is absent (a proof of absence, or the write that adds it)
 * needs a node's hash at some other position, found from the records: the smallest and largest key
 * under it give the topmost branch below it (their common prefix), folded up to the position.
 */
import { hash } from "node:crypto";
import {
  type BucketEntry,
  commonPrefixBits,
  encodeRecordProof,
  keyBit,
  RECORD_KEY_BYTES,
  RECORD_TREE_DEPTH,
  treeBucketHash,
  treeDefaults,
  treeNodeHash,
} from "@bkv/wire";
import type Database from "better-sqlite3";

/** A branch row on a key's path: its depth and its children's hashes at depth + 1. */
interface Branch {
  depth: number;
  l: Uint8Array;
  r: Uint8Array;
}

export type RecordWrite =
  | { key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array }
  | { key: Uint8Array; blob: null };

const sha256 = (b: Uint8Array): Uint8Array => u8(hash("sha256", b, "buffer"));

function u8(b: Buffer | Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The keys under the position (depth, key's first depth bits): [low, high]. */
function range(key: Uint8Array, depth: number): [Uint8Array, Uint8Array] {
  const lo = new Uint8Array(RECORD_KEY_BYTES);
  const hi = new Uint8Array(RECORD_KEY_BYTES).fill(0xff);
  const full = depth >> 3;
  lo.set(key.subarray(0, full));
  hi.set(key.subarray(0, full));
  const rest = depth & 7;
  if (rest !== 0) {
    const mask = (0xff << (8 - rest)) & 0xff;
    lo[full] = key[full]! & mask;
    hi[full] = (key[full]! & mask) | (~mask & 0xff);
  }
  return [lo, hi];
}

function posId(key: Uint8Array, depth: number): Uint8Array {
  const [lo] = range(key, depth);
  const out = new Uint8Array(1 + ((depth + 7) >> 3));
  out[0] = depth;
  out.set(lo.subarray(0, out.length - 1), 1);
  return out;
}

function flip(key: Uint8Array, bit: number): Uint8Array {
  const out = key.slice();
  out[bit >> 3]! ^= 0x80 >> (bit & 7);
  return out;
}

export class RecordStore {
  private readonly defaults: Uint8Array[];
  private readonly q: {
    first: Database.Statement<[Uint8Array, Uint8Array]>;
    last: Database.Statement<[Uint8Array, Uint8Array]>;
    bucket: Database.Statement<[Uint8Array, Uint8Array]>;
    get: Database.Statement<[Uint8Array]>;
    put: Database.Statement<[Uint8Array, Uint8Array, Uint8Array]>;
    del: Database.Statement<[Uint8Array]>;
    node: Database.Statement<[Uint8Array]>;
    putNode: Database.Statement<[Uint8Array, Uint8Array, Uint8Array, Uint8Array]>;
    before: Database.Statement<[Uint8Array]>;
    after: Database.Statement<[Uint8Array]>;
    delNode: Database.Statement<[Uint8Array]>;
    meta: Database.Statement<[]>;
    putMeta: Database.Statement<[number, Uint8Array]>;
    scan: Database.Statement<[Uint8Array, number]>;
    count: Database.Statement<[]>;
  };

  /** Statements reading the branch rows at the first n depths of a path, by n. */
  private readonly pathQueries = new Map<number, Database.Statement<Uint8Array[]>>();

  constructor(
    private readonly db: Database.Database,
    readonly depth = RECORD_TREE_DEPTH,
  ) {
    this.defaults = treeDefaults(sha256, depth);
    db.exec(`
      CREATE TABLE IF NOT EXISTS records (key BLOB PRIMARY KEY, blob BLOB NOT NULL, vhash BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS tree_nodes (pos BLOB PRIMARY KEY, hash BLOB NOT NULL, l BLOB NOT NULL, r BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS tree_meta (id INTEGER PRIMARY KEY CHECK (id = 1), applied INTEGER NOT NULL, root BLOB NOT NULL);
    `);
    this.q = {
      first: db.prepare("SELECT key FROM records WHERE key >= ? AND key <= ? ORDER BY key LIMIT 1").pluck(),
      last: db
        .prepare("SELECT key FROM records WHERE key >= ? AND key <= ? ORDER BY key DESC LIMIT 1")
        .pluck(),
      bucket: db.prepare("SELECT key, vhash FROM records WHERE key >= ? AND key <= ? ORDER BY key"),
      get: db.prepare("SELECT blob, vhash FROM records WHERE key = ?"),
      put: db.prepare("INSERT OR REPLACE INTO records (key, blob, vhash) VALUES (?, ?, ?)"),
      del: db.prepare("DELETE FROM records WHERE key = ?"),
      node: db.prepare("SELECT hash FROM tree_nodes WHERE pos = ?").pluck(),
      putNode: db.prepare("INSERT OR REPLACE INTO tree_nodes (pos, hash, l, r) VALUES (?, ?, ?, ?)"),
      before: db.prepare("SELECT key FROM records WHERE key < ? ORDER BY key DESC LIMIT 1").pluck(),
      after: db.prepare("SELECT key FROM records WHERE key > ? ORDER BY key LIMIT 1").pluck(),
      delNode: db.prepare("DELETE FROM tree_nodes WHERE pos = ?"),
      meta: db.prepare("SELECT applied, root FROM tree_meta WHERE id = 1"),
      putMeta: db.prepare("INSERT OR REPLACE INTO tree_meta (id, applied, root) VALUES (1, ?, ?)"),
      scan: db.prepare("SELECT key, blob, vhash FROM records WHERE key > ? ORDER BY key LIMIT ?"),
      count: db.prepare("SELECT count(*) FROM records").pluck(),
    };
  }

  /** The log index the tree reflects (0: none yet) and its root. */
  state(): { applied: number; root: Uint8Array } {
    const m = this.q.meta.get() as { applied: number; root: Buffer } | undefined;
    return m === undefined
      ? { applied: 0, root: this.defaults[0]! }
      : { applied: m.applied, root: u8(m.root) };
  }

  count(): number {
    return this.q.count.get() as number;
  }

  private first(key: Uint8Array, depth: number): Uint8Array | undefined {
    const r = this.q.first.get(...range(key, depth)) as Buffer | undefined;
    return r === undefined ? undefined : u8(r);
  }

  private last(key: Uint8Array, depth: number): Uint8Array | undefined {
    const r = this.q.last.get(...range(key, depth)) as Buffer | undefined;
    return r === undefined ? undefined : u8(r);
  }

  private bucket(key: Uint8Array): BucketEntry[] {
    return (this.q.bucket.all(...range(key, this.depth)) as { key: Buffer; vhash: Buffer }[]).map((r) => ({
      key: u8(r.key),
      valueHash: u8(r.vhash),
    }));
  }

  /** Fold the hash h of the node at depth from (on key's path) up to depth to, with empty siblings. */
  private fold(h: Uint8Array, key: Uint8Array, from: number, to: number): Uint8Array {
    for (let d = from; d > to; d--) {
      h =
        keyBit(key, d - 1) === 1
          ? treeNodeHash(sha256, this.defaults[d]!, h)
          : treeNodeHash(sha256, h, this.defaults[d]!);
    }
    return h;
  }

  /** The topmost branch depth under a position, or depth (a lone bucket), or null (empty). */
  private top(key: Uint8Array, depth: number): { at: number; min: Uint8Array } | null {
    const min = this.first(key, depth);
    if (min === undefined) return null;
    const max = this.last(key, depth)!;
    return { at: commonPrefixBits(min, max, this.depth), min };
  }

  /** The hash of the node at depth on key's path. */
  private hashAt(key: Uint8Array, depth: number): Uint8Array {
    const t = this.top(key, depth);
    if (t === null) return this.defaults[depth]!;
    if (t.at >= this.depth)
      return this.fold(treeBucketHash(sha256, this.bucket(t.min)), t.min, this.depth, depth);
    const h = this.q.node.get(posId(t.min, t.at)) as Buffer | undefined;
    if (h === undefined) throw new Error(`record store: branch node missing at depth ${t.at}`);
    return this.fold(u8(h), t.min, t.at, depth);
  }

  /**
   * The branch rows on key's path, top-down: depth and the children's hashes one level below. A
   * branch at depth t on the path has keys sharing t + 1 bits with the key, and the keys sharing
   * the most bits with it are its neighbours in key order outside its bucket: only the depths
   * above that many bits are looked up (about log2 of the number of records).
   */
  private pathBranches(key: Uint8Array): Branch[] {
    const [lo, hi] = range(key, this.depth);
    const before = this.q.before.get(lo) as Buffer | undefined;
    const after = this.q.after.get(hi) as Buffer | undefined;
    if (before === undefined && after === undefined) return []; // one bucket or none: no branch
    const shared = (k: Buffer | undefined) => (k === undefined ? 0 : commonPrefixBits(k, key, this.depth));
    // Depths 0..n: a branch at depth t has keys sharing at least t bits with the key on one side.
    const n = Math.min(Math.max(shared(before), shared(after)), this.depth - 1) + 1;
    let q = this.pathQueries.get(n);
    if (q === undefined) {
      q = this.db.prepare(
        `SELECT pos, l, r FROM tree_nodes WHERE pos IN (${Array.from({ length: n }, () => "?").join(", ")})`,
      );
      this.pathQueries.set(n, q);
    }
    const positions: Uint8Array[] = [];
    for (let d = 0; d < n; d++) positions.push(posId(key, d));
    return (q.all(...positions) as { pos: Buffer; l: Buffer; r: Buffer }[])
      .map((row) => ({ depth: row.pos[0]!, l: u8(row.l), r: u8(row.r) }))
      .sort((a, b) => a.depth - b.depth);
  }

  /**
   * Apply record writes and record that the tree reflects log index applied. Call inside the
   * transaction that stores the log entries: both land or neither.
   */
  apply(writes: readonly RecordWrite[], applied: number): Uint8Array {
    let root = this.state().root;
    for (const w of writes) root = this.applyOne(w, root);
    this.q.putMeta.run(applied, root);
    return root;
  }

  /**
   * One write: at most one branch appears (the first record of a new bucket, beside the subtree its
   * key leaves) or goes (the last record of a bucket), then the branch rows on the key's path are
   * rehashed bottom-up. Returns the new root (root: the one before).
   */
  private applyOne(w: RecordWrite, root: Uint8Array): Uint8Array {
    const key = w.key;
    const path = this.pathBranches(key);
    const deepest = path.at(-1)?.depth ?? -1;
    const before = this.bucket(key);
    // Below the deepest branch, the key's side holds its own bucket alone, or (the bucket being
    // empty) only other keys, which the key leaves at `split`, or nothing (an empty tree).
    let split: number | null = null;
    if (before.length === 0) {
      if (w.blob === null) return root; // removing what is not there
      const other = this.first(key, deepest + 1);
      if (other !== undefined) split = commonPrefixBits(other, key, this.depth);
    }
    if (w.blob === null) this.q.del.run(key);
    else this.q.put.run(key, w.blob, w.valueHash);
    const after = this.bucket(key);

    /** The node under the deepest branch on the key's side: its depth, hash and a key on its path. */
    let below: { depth: number; hash: Uint8Array; bits: Uint8Array } | null;
    if (after.length > 0) {
      below = { depth: this.depth, hash: treeBucketHash(sha256, after), bits: key };
      if (split !== null) {
        const otherSide = flip(key, split);
        const h = this.hashAt(otherSide, split + 1);
        path.push({ depth: split, l: h, r: h }); // the key's side is set below
      }
    } else if (path.length === 0) {
      below = null; // the tree's only bucket is gone
    } else {
      // The bucket is gone, and with it the deepest branch: its other child takes its place.
      const gone = path.pop()!;
      this.q.delNode.run(posId(key, gone.depth));
      below = {
        depth: gone.depth + 1,
        hash: keyBit(key, gone.depth) === 0 ? gone.r : gone.l,
        bits: flip(key, gone.depth),
      };
    }
    for (let i = path.length - 1; i >= 0; i--) {
      const b = path[i]!;
      const edge = this.fold(below!.hash, below!.bits, below!.depth, b.depth + 1);
      if (keyBit(key, b.depth) === 0) b.l = edge;
      else b.r = edge;
      const hash = treeNodeHash(sha256, b.l, b.r);
      this.q.putNode.run(posId(key, b.depth), hash, b.l, b.r);
      below = { depth: b.depth, hash, bits: key };
    }
    return below === null ? this.defaults[0]! : this.fold(below.hash, below.bits, below.depth, 0);
  }

  /** The key's sealed blob (null: none) and the encoded proof of it against the stored root. */
  read(key: Uint8Array): { blob: Uint8Array | null; proof: Uint8Array } {
    const row = this.q.get.get(key) as { blob: Buffer } | undefined;
    const bitmap = new Uint8Array(this.depth >> 3);
    const siblings: Uint8Array[] = [];
    const give = (depth: number, h: Uint8Array) => {
      bitmap[(depth - 1) >> 3]! |= 0x80 >> ((depth - 1) & 7);
      siblings.push(h);
    };
    const path = this.pathBranches(key);
    for (const b of path) give(b.depth + 1, keyBit(key, b.depth) === 0 ? b.r : b.l);
    const bucket = this.bucket(key);
    let others: BucketEntry[] = [];
    if (bucket.length > 0) {
      others = bucket.filter((e) => Buffer.compare(e.key, key) !== 0);
    } else {
      // Nothing at the key's prefix: below the deepest branch the key's side holds other keys
      // (their subtree is the one sibling where the key's path leaves it) or nothing at all.
      const other = this.first(key, (path.at(-1)?.depth ?? -1) + 1);
      if (other !== undefined) {
        const j = commonPrefixBits(other, key, this.depth);
        give(j + 1, this.hashAt(other, j + 1));
      }
    }
    return {
      blob: row === undefined ? null : u8(row.blob).slice(),
      proof: encodeRecordProof({ bitmap, siblings, others }),
    };
  }

  /**
   * Fill an empty store with records given in strictly ascending key order, building the branch
   * rows bottom-up in one pass (recursion no deeper than the tree): for benchmarks and tests that
   * need a large tree quickly. A running host never calls it; its trees grow by apply(). Call inside
   * a transaction. Returns the root.
   */
  loadSorted(
    records: readonly { key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array }[],
    applied: number,
  ): Uint8Array {
    if (this.count() !== 0) throw new Error("record store: loadSorted needs an empty store");
    for (let i = 1; i < records.length; i++) {
      if (Buffer.compare(records[i - 1]!.key, records[i]!.key) >= 0)
        throw new Error("record store: loadSorted needs keys in strictly ascending order");
    }
    for (const r of records) this.q.put.run(r.key, r.blob, r.valueHash);
    /** The subtree of records [lo, hi) at a position whose depth is at most its top: its top's depth and hash. */
    const build = (lo: number, hi: number): { depth: number; hash: Uint8Array } => {
      const first = records[lo]!.key;
      const t = commonPrefixBits(first, records[hi - 1]!.key, this.depth);
      if (t >= this.depth) return { depth: this.depth, hash: treeBucketHash(sha256, records.slice(lo, hi)) };
      let a = lo;
      let b = hi - 1; // keyBit(records[a], t) = 0, keyBit(records[b], t) = 1: find the first 1
      while (b - a > 1) {
        const m = (a + b) >> 1;
        if (keyBit(records[m]!.key, t) === 0) a = m;
        else b = m;
      }
      const left = build(lo, b);
      const right = build(b, hi);
      const l = this.fold(left.hash, first, left.depth, t + 1);
      const r = this.fold(right.hash, records[b]!.key, right.depth, t + 1);
      const hash = treeNodeHash(sha256, l, r);
      this.q.putNode.run(posId(first, t), hash, l, r);
      return { depth: t, hash };
    };
    const root =
      records.length === 0
        ? this.defaults[0]!
        : (() => {
            const top = build(0, records.length);
            return this.fold(top.hash, records[0]!.key, top.depth, 0);
          })();
    this.q.putMeta.run(applied, root);
    return root;
  }

  /** Records after a key (an empty key: from the first) in key order: a sync stream the receiving HSM checks against its root. */
  scan(after: Uint8Array, limit: number): { key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array }[] {
    return (this.q.scan.all(after, limit) as { key: Buffer; blob: Buffer; vhash: Buffer }[]).map((r) => ({
      key: u8(r.key).slice(),
      blob: u8(r.blob).slice(),
      valueHash: u8(r.vhash).slice(),
    }));
  }
}
