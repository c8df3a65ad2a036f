/**
 * The host's copy of the record tree (format: wire/src/record-tree-format.ts), in SQLite beside the
 * sealed log: per record key its sealed blob (the host cannot open it) and value hash, one row per
 * branch of the tree (one fewer than there are buckets) with its hash and its children's, the root
 * and the log index the tree reflects. Writes happen inside the caller's transaction, so the tree
 * and the log entries it reflects are stored together. Reads return the blob and a proof against
 * the root; the HSM checks every proof, so nothing here is trusted, only kept.
 *
 * A branch row is keyed by its position (depth, then the prefix its keys share), so the branches
 * on a key's path come from one lookup of the positions the key's own prefixes give, bounded by
 * the bits the key shares with its neighbours in key order (about log2 n of them). Where the path
 * ends below them, the smallest and largest key there give what is there: one bucket, or the
 * topmost branch (their common prefix), or nothing.
 */
import { hash } from "node:crypto";
import {
  type BucketEntry,
  commonPrefixBits,
  encodeRecordProof,
  keyBit,
  keyPrefix,
  type ProofEnd,
  RECORD_KEY_BYTES,
  RECORD_TREE_DEPTH,
  treeBranchHash,
  treeBucketHash,
  treeEmptyRoot,
} from "@bkv/wire";
import type Database from "better-sqlite3";

/** A branch row: its depth, a key under it, and its children's hashes. */
interface Branch {
  depth: number;
  l: Uint8Array;
  r: Uint8Array;
}

/** Where a key's path ends below its branches, as stored. */
type End =
  | { kind: "empty" }
  | { kind: "bucket"; entries: BucketEntry[]; hash: Uint8Array }
  | { kind: "branch"; depth: number; key: Uint8Array; l: Uint8Array; r: Uint8Array; hash: Uint8Array };

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

/** A branch row's key: its depth, then its prefix. */
function posId(key: Uint8Array, depth: number): Uint8Array {
  const p = keyPrefix(key, depth);
  const out = new Uint8Array(1 + p.length);
  out[0] = depth;
  out.set(p, 1);
  return out;
}

export class RecordStore {
  private readonly emptyRoot = treeEmptyRoot(sha256);
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
      node: db.prepare("SELECT hash, l, r FROM tree_nodes WHERE pos = ?"),
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
    return m === undefined ? { applied: 0, root: this.emptyRoot } : { applied: m.applied, root: u8(m.root) };
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

  /** Where key's path ends below the branches on it (path, top-down). */
  private end(key: Uint8Array, path: readonly Branch[]): End {
    const below = (path.at(-1)?.depth ?? -1) + 1;
    const min = this.first(key, below);
    if (min === undefined) {
      if (path.length > 0) throw new Error("record store: a branch with an empty child");
      return { kind: "empty" };
    }
    const at = commonPrefixBits(min, this.last(key, below)!, this.depth);
    if (at >= this.depth) {
      const entries = this.bucket(min);
      return { kind: "bucket", entries, hash: treeBucketHash(sha256, entries) };
    }
    const row = this.q.node.get(posId(min, at)) as { hash: Buffer; l: Buffer; r: Buffer } | undefined;
    if (row === undefined) throw new Error(`record store: branch row missing at depth ${at}`);
    return { kind: "branch", depth: at, key: min, l: u8(row.l), r: u8(row.r), hash: u8(row.hash) };
  }

  /** The key's own bucket, if the path ends there. */
  private own(end: End, key: Uint8Array): BucketEntry[] | null {
    return end.kind === "bucket" && commonPrefixBits(end.entries[0]!.key, key, this.depth) >= this.depth
      ? end.entries
      : null;
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
   * One write: at most one branch appears (beside the subtree a new bucket's key leaves) or goes
   * (the parent of a bucket's last record), then the branch rows on the key's path are rehashed
   * bottom-up. Returns the new root (root: the one before).
   */
  private applyOne(w: RecordWrite, root: Uint8Array): Uint8Array {
    const key = w.key;
    const path = this.pathBranches(key);
    const end = this.end(key, path);
    /** The new hash of what lies on the key's side below the deepest branch left on its path. */
    let below: Uint8Array | null;
    const own = this.own(end, key);
    if (own !== null) {
      if (w.blob === null) {
        if (!own.some((e) => Buffer.compare(e.key, key) === 0)) return root;
        this.q.del.run(key);
      } else this.q.put.run(key, w.blob, w.valueHash);
      const after = this.bucket(key);
      if (after.length > 0) below = treeBucketHash(sha256, after);
      else {
        // The bucket is gone, and with it its parent branch: the other child takes its place.
        const gone = path.pop();
        if (gone === undefined) below = null;
        else {
          this.q.delNode.run(posId(key, gone.depth));
          below = keyBit(key, gone.depth) === 0 ? gone.r : gone.l;
        }
      }
    } else {
      if (w.blob === null) return root; // removing what is not there
      this.q.put.run(key, w.blob, w.valueHash);
      const leaf = treeBucketHash(sha256, [{ key, valueHash: w.valueHash }]);
      if (end.kind === "empty") below = leaf;
      else {
        const c =
          end.kind === "bucket"
            ? commonPrefixBits(key, end.entries[0]!.key, this.depth)
            : commonPrefixBits(key, end.key, end.depth);
        const [l, r] = keyBit(key, c) === 0 ? [leaf, end.hash] : [end.hash, leaf];
        below = treeBranchHash(sha256, c, key, l, r);
        this.q.putNode.run(posId(key, c), below, l, r);
      }
    }
    for (let i = path.length - 1; i >= 0; i--) {
      const b = path[i]!;
      if (keyBit(key, b.depth) === 0) b.l = below!;
      else b.r = below!;
      below = treeBranchHash(sha256, b.depth, key, b.l, b.r);
      this.q.putNode.run(posId(key, b.depth), below, b.l, b.r);
    }
    return below ?? this.emptyRoot;
  }

  /** The key's sealed blob (null: none) and the encoded proof of it against the stored root. */
  read(key: Uint8Array): { blob: Uint8Array | null; proof: Uint8Array } {
    const row = this.q.get.get(key) as { blob: Buffer } | undefined;
    const path = this.pathBranches(key);
    const end = this.end(key, path);
    let proofEnd: ProofEnd;
    if (end.kind === "empty") proofEnd = end;
    else if (end.kind === "bucket")
      proofEnd = {
        kind: "bucket",
        entries:
          this.own(end, key) !== null
            ? end.entries.filter((e) => Buffer.compare(e.key, key) !== 0)
            : end.entries,
      };
    else
      proofEnd = {
        kind: "branch",
        depth: end.depth,
        prefix: keyPrefix(end.key, end.depth),
        left: end.l,
        right: end.r,
      };
    return {
      blob: row === undefined ? null : u8(row.blob).slice(),
      proof: encodeRecordProof({
        path: path.map((b) => ({ depth: b.depth, sibling: keyBit(key, b.depth) === 0 ? b.r : b.l })),
        end: proofEnd,
      }),
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
    /** The hash of the subtree of records [lo, hi), storing its branch rows. */
    const build = (lo: number, hi: number): Uint8Array => {
      const first = records[lo]!.key;
      const t = commonPrefixBits(first, records[hi - 1]!.key, this.depth);
      if (t >= this.depth) return treeBucketHash(sha256, records.slice(lo, hi));
      let a = lo;
      let b = hi - 1; // keyBit(records[a], t) = 0, keyBit(records[b], t) = 1: find the first 1
      while (b - a > 1) {
        const m = (a + b) >> 1;
        if (keyBit(records[m]!.key, t) === 0) a = m;
        else b = m;
      }
      const l = build(lo, b);
      const r = build(b, hi);
      const h = treeBranchHash(sha256, t, first, l, r);
      this.q.putNode.run(posId(first, t), h, l, r);
      return h;
    };
    const root = records.length === 0 ? this.emptyRoot : build(0, records.length);
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
