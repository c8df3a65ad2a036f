/**
 * The log's durable state in SQLite (WAL, synchronous=FULL): entries in index order, evidence by
 * digest, the published (cosigned) checkpoints, and each witness's last cosigned size.
 * The Merkle tree itself lives in memory and is rebuilt from the leaf hashes at start.
 */
import Database from "better-sqlite3";

export interface StoredEntry {
  readonly index: number;
  readonly namespace: string;
  readonly epoch: number;
  readonly artifact: Uint8Array;
  readonly evidenceDigest: Uint8Array;
  /** The encoded leaf entry (what the tree hashes). */
  readonly entry: Uint8Array;
  readonly logSignature: Uint8Array;
}

interface EntryRow {
  idx: number;
  namespace: string;
  epoch: number;
  artifact: Buffer;
  evidence_digest: Buffer;
  entry: Buffer;
  log_signature: Buffer;
}

function toEntry(r: EntryRow): StoredEntry {
  return {
    index: r.idx,
    namespace: r.namespace,
    epoch: r.epoch,
    artifact: new Uint8Array(r.artifact),
    evidenceDigest: new Uint8Array(r.evidence_digest),
    entry: new Uint8Array(r.entry),
    logSignature: new Uint8Array(r.log_signature),
  };
}

export class LogStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        idx INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        artifact BLOB NOT NULL,
        evidence_digest BLOB NOT NULL,
        entry BLOB NOT NULL,
        leaf_hash BLOB NOT NULL,
        log_signature BLOB NOT NULL,
        UNIQUE (namespace, epoch)
      );
      CREATE TABLE IF NOT EXISTS evidence (digest BLOB PRIMARY KEY, body BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS witness_sizes (witness TEXT PRIMARY KEY, size INTEGER NOT NULL);
    `);
  }

  close(): void {
    this.db.close();
  }

  /** Leaf hashes in index order, to rebuild the tree. */
  *leafHashes(): Generator<Uint8Array> {
    for (const r of this.db.prepare("SELECT leaf_hash FROM entries ORDER BY idx").iterate()) {
      yield new Uint8Array((r as { leaf_hash: Buffer }).leaf_hash);
    }
  }

  count(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM entries").get() as { n: number }).n;
  }

  byNamespaceEpoch(namespace: string, epoch: number): StoredEntry | undefined {
    const r = this.db
      .prepare("SELECT * FROM entries WHERE namespace = ? AND epoch = ?")
      .get(namespace, epoch);
    return r === undefined ? undefined : toEntry(r as EntryRow);
  }

  /** The entry with the highest epoch in the namespace among the first `size` entries. */
  latestInNamespace(namespace: string, size: number): StoredEntry | undefined {
    const r = this.db
      .prepare("SELECT * FROM entries WHERE namespace = ? AND idx < ? ORDER BY epoch DESC LIMIT 1")
      .get(namespace, size);
    return r === undefined ? undefined : toEntry(r as EntryRow);
  }

  /** The entries of the namespace among the first `size` entries, highest epoch first. */
  *inNamespace(namespace: string, size: number): Generator<StoredEntry> {
    for (const r of this.db
      .prepare("SELECT * FROM entries WHERE namespace = ? AND idx < ? ORDER BY epoch DESC")
      .iterate(namespace, size))
      yield toEntry(r as EntryRow);
  }

  /** Every entry's index, namespace and epoch with its evidence (empty if absent), in index order. */
  *entriesWithEvidence(): Generator<{
    index: number;
    namespace: string;
    epoch: number;
    evidence: Uint8Array;
  }> {
    const rows = this.db
      .prepare(
        "SELECT e.idx, e.namespace, e.epoch, v.body FROM entries e LEFT JOIN evidence v ON v.digest = e.evidence_digest ORDER BY e.idx",
      )
      .iterate() as Iterable<{ idx: number; namespace: string; epoch: number; body: Buffer | null }>;
    for (const r of rows) {
      yield {
        index: r.idx,
        namespace: r.namespace,
        epoch: r.epoch,
        evidence: r.body === null ? new Uint8Array(0) : new Uint8Array(r.body),
      };
    }
  }

  /** Encoded entries [from, to). */
  entries(from: number, to: number): Uint8Array[] {
    return this.db
      .prepare("SELECT entry FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx")
      .all(from, to)
      .map((r) => new Uint8Array((r as { entry: Buffer }).entry));
  }

  /** Append one entry and its evidence in one transaction. */
  append(e: StoredEntry, leafHash: Uint8Array, evidence: Uint8Array): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          "INSERT INTO entries (idx, namespace, epoch, artifact, evidence_digest, entry, leaf_hash, log_signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .run(e.index, e.namespace, e.epoch, e.artifact, e.evidenceDigest, e.entry, leafHash, e.logSignature);
      this.db
        .prepare("INSERT OR IGNORE INTO evidence (digest, body) VALUES (?, ?)")
        .run(e.evidenceDigest, evidence);
    })();
  }

  evidence(digest: Uint8Array): Uint8Array | undefined {
    const r = this.db.prepare("SELECT body FROM evidence WHERE digest = ?").get(digest) as
      | { body: Buffer }
      | undefined;
    return r === undefined ? undefined : new Uint8Array(r.body);
  }

  latestCheckpoint(): { size: number; note: string } | undefined {
    return this.db.prepare("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").get() as
      | { size: number; note: string }
      | undefined;
  }

  saveCheckpoint(size: number, note: string, witnessSizes: ReadonlyMap<string, number>): void {
    this.db.transaction(() => {
      this.db.prepare("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)").run(size, note);
      this.saveWitnessSizesNow(witnessSizes);
    })();
  }

  saveWitnessSizes(sizes: ReadonlyMap<string, number>): void {
    this.db.transaction(() => this.saveWitnessSizesNow(sizes))();
  }

  private saveWitnessSizesNow(sizes: ReadonlyMap<string, number>): void {
    const st = this.db.prepare("INSERT OR REPLACE INTO witness_sizes (witness, size) VALUES (?, ?)");
    for (const [w, s] of sizes) st.run(w, s);
  }

  witnessSizes(): Map<string, number> {
    const rows = this.db.prepare("SELECT witness, size FROM witness_sizes").all() as {
      witness: string;
      size: number;
    }[];
    return new Map(rows.map((r) => [r.witness, r.size]));
  }
}
