/**
 * The host's storage of its HSM's sealed log and snapshots, in SQLite (better-sqlite3). The host
 * cannot read any of it; it only keeps it durable and hands it back at boot.
 */

import type { SealedEntry } from "@bkv/wire";
import Database from "better-sqlite3";

export class HostStorage {
  private readonly db: Database.Database;
  private readonly insertEntry: Database.Statement<[number, Uint8Array]>;
  private readonly putSnapshot: Database.Statement<[number, Uint8Array]>;
  private readonly dropBefore: Database.Statement<[number]>;
  private readonly dropFrom: Database.Statement<[number]>;
  private readonly persistTx: (
    entries: SealedEntry[],
    snapshot: SealedEntry | null,
    truncateFrom: number | null,
  ) => void;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, sealed BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, sealed BLOB NOT NULL);
    `);
    this.insertEntry = this.db.prepare("INSERT OR REPLACE INTO entries (idx, sealed) VALUES (?, ?)");
    this.putSnapshot = this.db.prepare("INSERT OR REPLACE INTO snapshot (id, idx, sealed) VALUES (1, ?, ?)");
    this.dropBefore = this.db.prepare("DELETE FROM entries WHERE idx <= ?");
    this.dropFrom = this.db.prepare("DELETE FROM entries WHERE idx >= ?");
    // Made once: one transaction (one WAL commit, one fsync) per persist frame, whatever it holds.
    this.persistTx = this.db.transaction(
      (entries: SealedEntry[], snapshot: SealedEntry | null, truncateFrom: number | null) => {
        if (truncateFrom !== null) this.dropFrom.run(truncateFrom);
        for (const e of entries) this.insertEntry.run(e.index, e.sealed);
        if (snapshot !== null) {
          this.putSnapshot.run(snapshot.index, snapshot.sealed);
          this.dropBefore.run(snapshot.index);
        }
      },
    );
  }

  load(): { snapshot: SealedEntry | null; entries: SealedEntry[] } {
    const snap = this.db.prepare("SELECT idx, sealed FROM snapshot WHERE id = 1").get() as
      | { idx: number; sealed: Buffer }
      | undefined;
    const from = snap?.idx ?? 0;
    const rows = this.db.prepare("SELECT idx, sealed FROM entries WHERE idx > ? ORDER BY idx").all(from) as {
      idx: number;
      sealed: Buffer;
    }[];
    return {
      snapshot: snap === undefined ? null : { index: snap.idx, sealed: new Uint8Array(snap.sealed) },
      entries: rows.map((r) => ({ index: r.idx, sealed: new Uint8Array(r.sealed) })),
    };
  }

  /** Store a batch durably (one transaction, synchronous=FULL): truncate, insert, then snapshot. */
  persist(entries: SealedEntry[], snapshot: SealedEntry | null, truncateFrom: number | null = null): void {
    this.persistTx(entries, snapshot, truncateFrom);
  }

  close(): void {
    this.db.close();
  }
}
