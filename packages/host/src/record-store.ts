/**
 * The host's copy of the record tree (format: wire/src/record-tree-format.ts), in SQLite beside the
 * sealed log: per record key its sealed blob (the host cannot open it) and value hash, the hashes of
 * the tree's branch nodes (both children non-empty, about one per record), the root and the log
 * index the tree reflects. Writes happen inside the caller's transaction, so the tree and the log
 * entries it reflects are stored together. Reads return the blob and a proof against the root; the
 * HSM checks every proof, so nothing here is trusted, only kept.
 *
 * A node's hash at any position is found from the records: the smallest and largest key under it
 * give the topmost branch below it (their common prefix); a lone bucket or a branch is folded up
 * to the position with empty siblings.
 */
import { createHash } from "node:crypto";
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

export type RecordWrite =
  | { key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array }
  | { key: Uint8Array; blob: null };

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

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
    putNode: Database.Statement<[Uint8Array, Uint8Array]>;
    delNode: Database.Statement<[Uint8Array]>;
    meta: Database.Statement<[]>;
    putMeta: Database.Statement<[number, Uint8Array]>;
    scan: Database.Statement<[Uint8Array, number]>;
    count: Database.Statement<[]>;
  };

  constructor(
    db: Database.Database,
    readonly depth = RECORD_TREE_DEPTH,
  ) {
    this.defaults = treeDefaults(sha256, depth);
    db.exec(`
      CREATE TABLE IF NOT EXISTS records (key BLOB PRIMARY KEY, blob BLOB NOT NULL, vhash BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS tree_nodes (pos BLOB PRIMARY KEY, hash BLOB NOT NULL) WITHOUT ROWID;
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
      putNode: db.prepare("INSERT OR REPLACE INTO tree_nodes (pos, hash) VALUES (?, ?)"),
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

  /** Depths of the branch nodes on key's path, top-down. */
  private branches(key: Uint8Array): number[] {
    const out: number[] = [];
    let d = 0;
    for (;;) {
      const t = this.top(key, d);
      if (t === null || t.at >= this.depth) return out;
      if (commonPrefixBits(t.min, key, t.at) < t.at) return out; // key leaves the occupied part
      out.push(t.at);
      d = t.at + 1;
    }
  }

  /**
   * Apply record writes and record that the tree reflects log index applied. Call inside the
   * transaction that stores the log entries: both land or neither.
   */
  apply(writes: readonly RecordWrite[], applied: number): Uint8Array {
    const old = writes.map((w) => this.branches(w.key));
    for (const w of writes) {
      if (w.blob === null) this.q.del.run(w.key);
      else this.q.put.run(w.key, w.blob, w.valueHash);
    }
    writes.forEach((w, i) => {
      for (const d of old[i]!) this.q.delNode.run(posId(w.key, d));
    });
    const todo = new Map<string, { key: Uint8Array; depth: number }>();
    for (const w of writes) {
      for (const d of this.branches(w.key)) {
        const id = posId(w.key, d);
        todo.set(Buffer.from(id).toString("hex"), { key: w.key, depth: d });
      }
    }
    for (const { key, depth } of [...todo.values()].sort((a, b) => b.depth - a.depth)) {
      const left = this.hashAt(keyBit(key, depth) === 0 ? key : flip(key, depth), depth + 1);
      const right = this.hashAt(keyBit(key, depth) === 1 ? key : flip(key, depth), depth + 1);
      this.q.putNode.run(posId(key, depth), treeNodeHash(sha256, left, right));
    }
    const root = this.hashAt(new Uint8Array(RECORD_KEY_BYTES), 0);
    this.q.putMeta.run(applied, root);
    return root;
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
    let others: BucketEntry[] = [];
    let d = 0;
    for (;;) {
      const t = this.top(key, d);
      if (t === null) break;
      const stop = Math.min(t.at, this.depth);
      const j = commonPrefixBits(t.min, key, stop);
      if (j < stop) {
        // key's path leaves the occupied subtree at bit j: one sibling, empty below.
        give(j + 1, this.hashAt(t.min, j + 1));
        break;
      }
      if (t.at >= this.depth) {
        others = this.bucket(key).filter((e) => Buffer.compare(e.key, key) !== 0);
        break;
      }
      give(t.at + 1, this.hashAt(flip(key, t.at), t.at + 1));
      d = t.at + 1;
    }
    return {
      blob: row === undefined ? null : u8(row.blob).slice(),
      proof: encodeRecordProof({ bitmap, siblings, others }),
    };
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
