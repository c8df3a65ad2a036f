/**
 * What the HSM keeps in its host's storage, and the way there and back: log entries and snapshots
 * sealed under the HSM's own key (bound to their index), the pipeline of writes (one persist frame
 * in flight; what Raft hands out meanwhile is merged into the next), and reading storage back at
 * boot, where every blob must unseal and every entry must chain to the one before it. Whether the
 * storage is as new as what this HSM acknowledged is storage-check.ts's question, not this file's.
 */
import { BkvError, bytesEqual, ErrorCode, type HsmToHost, type SealedEntry, utf8, Writer } from "@bkv/wire";
import type { HsmPlatform } from "./platform.js";
import type { LogRecord, SnapshotMeta } from "./raft.js";
import { decodeRaftEntry } from "./raft-entry.js";
import { VaultState } from "./state.js";

export const ENTRY_AAD = utf8("bkv log entry v1");
export const SNAPSHOT_AAD = utf8("bkv snapshot v1");
const ZERO_HASH = new Uint8Array(32);

/** The associated data a sealed entry or snapshot is bound to: its kind and index (pinned in testdata/formats). */
export function aadFor(kind: Uint8Array, index: number): Uint8Array {
  return new Writer().fixed(kind).u64(index).finish();
}

/** One of Raft's hand-outs to persist: entries (after truncating from truncateFrom), a snapshot. */
export interface Batch {
  entries: LogRecord[];
  truncateFrom: number | null;
  snapshot: { meta: SnapshotMeta; state: Uint8Array } | null;
}

/** What the pipeline needs to know of the log: how far it is durable, and its chain hashes. */
export interface LogView {
  durableIndex: number;
  hashAt(index: number): Uint8Array | undefined;
}

export class PersistPipeline {
  private queue: Batch[] = [];
  private inFlight: { id: number; tip: number; tipHash: Uint8Array } | null = null;
  private nextId = 1;

  constructor(private readonly platform: HsmPlatform) {}

  push(b: Batch): void {
    this.queue.push(b);
  }

  /**
   * The next persist frame: every queued batch merged (a later truncation drops earlier entries it
   * covers) and sealed, and the tip it makes durable once confirmed. Null while a frame is in flight
   * or nothing is queued.
   */
  async next(log: LogView | null): Promise<(HsmToHost & { type: "persist" }) | null> {
    if (this.inFlight !== null || this.queue.length === 0) return null;
    const merged: Batch = { entries: [], truncateFrom: null, snapshot: null };
    for (const b of this.queue) {
      if (b.truncateFrom !== null) {
        const from = b.truncateFrom;
        merged.entries = merged.entries.filter((e) => e.index < from);
        merged.truncateFrom = merged.truncateFrom === null ? from : Math.min(merged.truncateFrom, from);
      }
      merged.entries.push(...b.entries);
      if (b.snapshot !== null) merged.snapshot = b.snapshot;
    }
    this.queue = [];
    const last = merged.entries.at(-1);
    let tip: number;
    let tipHash: Uint8Array;
    if (last !== undefined) {
      tip = last.index;
      tipHash = last.hash;
    } else if (merged.snapshot !== null && merged.truncateFrom === 0) {
      tip = merged.snapshot.meta.index;
      tipHash = merged.snapshot.meta.hash;
    } else if (merged.truncateFrom !== null) {
      tip = merged.truncateFrom - 1;
      tipHash = log?.hashAt(tip) ?? ZERO_HASH;
    } else {
      tip = log?.durableIndex ?? 0;
      tipHash = log?.hashAt(tip) ?? ZERO_HASH;
    }
    const id = this.nextId;
    this.nextId = (this.nextId % 0xfffffff0) + 1;
    this.inFlight = { id, tip, tipHash };
    const entries: SealedEntry[] = [];
    for (const e of merged.entries) {
      entries.push({ index: e.index, sealed: await this.platform.seal(e.bytes, aadFor(ENTRY_AAD, e.index)) });
    }
    const snap = merged.snapshot;
    const snapshot =
      snap === null
        ? null
        : {
            index: snap.meta.index,
            sealed: await this.platform.seal(snap.state, aadFor(SNAPSHOT_AAD, snap.meta.index)),
          };
    return { type: "persist", id, entries, snapshot, truncateFrom: merged.truncateFrom };
  }

  /** The host confirmed frame id: the tip it made durable, or null if id is not the frame in flight. */
  confirm(id: number): { tip: number; tipHash: Uint8Array } | null {
    const f = this.inFlight;
    if (f === null || id !== f.id) return null;
    this.inFlight = null;
    return { tip: f.tip, tipHash: f.tipHash };
  }
}

/** Host storage read back at boot: the committed state of its snapshot, and the entries after it. */
export interface StoredLog {
  state: VaultState;
  meta: SnapshotMeta;
  snapshotState: Uint8Array | null;
  log: LogRecord[];
}

/**
 * Unseal and check what the host handed back at boot. Throws BkvError CORRUPT for a blob that does
 * not unseal under this HSM's key at its index, a gap or disorder, or an entry that does not chain.
 */
export async function readStorage(
  platform: HsmPlatform,
  snapshot: SealedEntry | null,
  entries: SealedEntry[],
): Promise<StoredLog> {
  let state = new VaultState();
  let meta: SnapshotMeta = { index: 0, term: 0, hash: ZERO_HASH };
  let snapshotState: Uint8Array | null = null;
  const log: LogRecord[] = [];
  const unseal = async (blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array> => {
    try {
      return await platform.unseal(blob, aad);
    } catch {
      throw new BkvError(ErrorCode.Corrupt, "a sealed blob failed authentication");
    }
  };
  if (snapshot !== null) {
    const plain = await unseal(snapshot.sealed, aadFor(SNAPSHOT_AAD, snapshot.index));
    state = VaultState.decode(plain);
    if (state.index !== snapshot.index) throw new BkvError(ErrorCode.Corrupt, "snapshot index mismatch");
    meta = { index: state.index, term: state.term, hash: state.chainHash };
    snapshotState = plain;
  }
  let prev = meta.hash;
  for (const se of entries) {
    const bytes = await unseal(se.sealed, aadFor(ENTRY_AAD, se.index));
    const e = decodeRaftEntry(bytes);
    if (e.index !== se.index || e.index !== meta.index + log.length + 1) {
      throw new BkvError(ErrorCode.Corrupt, `host storage has a gap or disorder at entry ${se.index}`);
    }
    if (!bytesEqual(e.prevHash, prev)) {
      throw new BkvError(ErrorCode.Corrupt, `entry ${e.index} does not chain to the entry before it`);
    }
    prev = platform.crypto.sha256(bytes);
    log.push({ index: e.index, term: e.term, bytes, hash: prev });
  }
  return { state, meta, snapshotState, log };
}
