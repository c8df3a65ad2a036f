/**
 * The leader's view of the record tree between what its host has confirmed and what its log has
 * decided (docs/record-tree.md §2-§3): records written by entries the host has not applied yet (the
 * dirty cache, answered without asking the host), reads checked against the confirmed root only
 * (RecordReader), and a PartialTree that gives the root after each entry from those reads alone.
 * When the host confirms its tree at an index, everything written up to it is dropped and the
 * partial tree is pruned to the keys written since, so what it holds is bounded by the writes in
 * flight, never by the number of records. Not wired into the core yet (steps 2-4 of
 * docs/record-tree.md §8).
 */
import { BkvError, ErrorCode, toHex } from "@bkv/wire";
import type { HsmCrypto } from "./platform.js";
import { encodeRecord, type RecordSecrets } from "./record-codec.js";
import { type RecordAnswer, RecordReader } from "./record-reader.js";
import { PartialTree, type RecordTree } from "./record-tree.js";
import type { VaultRecord } from "./state.js";

/** One record an entry changes: its new value, or null (destroyed). */
export interface RecordChange {
  user: string;
  record: VaultRecord | null;
}

export type RecordLookup =
  /** Written by an entry the host has not applied yet: no read needed. */
  | { kind: "known"; record: VaultRecord | null }
  /** Ask the host for this key's record and proof, then pass its answer to answer(). */
  | { kind: "read"; key: Uint8Array };

export class RecordCache {
  private readonly reader: RecordReader;
  private readonly partial: PartialTree;
  /** Records written after the confirmed index, by key (hex): the newest value and its entry. */
  private readonly dirty = new Map<string, { index: number; key: Uint8Array; record: VaultRecord | null }>();
  /** The root after each entry with writes after the confirmed index, in index order. */
  private roots: { index: number; root: Uint8Array }[] = [];
  private last: number;

  constructor(
    private readonly tree: RecordTree,
    crypto: Pick<HsmCrypto, "aeadOpen">,
    secrets: RecordSecrets,
    confirmed: { index: number; root: Uint8Array },
  ) {
    this.reader = new RecordReader(tree, crypto, secrets, confirmed);
    this.partial = new PartialTree(tree, confirmed.root);
    this.last = confirmed.index;
  }

  /** The index and root the host last confirmed. */
  get confirmed(): { index: number; root: Uint8Array } {
    return this.reader.confirmedTree;
  }

  /** The root after the newest entry written. */
  get root(): Uint8Array {
    return this.partial.root();
  }

  /** Nodes the partial tree holds and records the dirty cache holds (a measure of memory). */
  get size(): { nodes: number; dirty: number } {
    return { nodes: this.partial.size, dirty: this.dirty.size };
  }

  /** The user's record key (HMAC of the user id under the fleet's key secret). */
  keyOf(user: string): Uint8Array {
    return this.reader.keyOf(user);
  }

  lookup(user: string): RecordLookup {
    const key = this.reader.keyOf(user);
    const d = this.dirty.get(toHex(key));
    return d === undefined ? { kind: "read", key } : { kind: "known", record: d.record };
  }

  /**
   * The host's answer to a read of user's record: checked against the confirmed root
   * (RECORD_PROOF for any lie, UNAVAILABLE for an answer from another tree index: ask again), its
   * path taken in for the roots to come. A user written since the confirmed index is answered from
   * the dirty cache, never from the host.
   */
  async answer(user: string, answer: RecordAnswer): Promise<VaultRecord | null> {
    const known = this.lookup(user);
    if (known.kind === "known") return known.record;
    const read = await this.reader.read(user, answer);
    this.partial.absorb(read.path);
    return read.record;
  }

  /**
   * The entry at index changes these records (each read before, or written since the confirmed
   * index); returns the root after it. Indexes only go up.
   */
  write(index: number, changes: readonly RecordChange[]): Uint8Array {
    if (!Number.isSafeInteger(index) || index <= this.last)
      throw new BkvError(ErrorCode.Corrupt, `record writes at ${index}, not after ${this.last}`);
    // All or nothing: check every path is held before changing any.
    const keyed = changes.map((c) => {
      const key = this.reader.keyOf(c.user);
      if (this.partial.get(key) === undefined && !this.dirty.has(toHex(key)))
        throw new BkvError(ErrorCode.Corrupt, "record write for a user not read first");
      return { ...c, key };
    });
    for (const c of keyed) {
      const valueHash = c.record === null ? null : this.tree.valueHash(c.key, encodeRecord(c.user, c.record));
      this.partial.set(c.key, valueHash);
      this.dirty.set(toHex(c.key), { index, key: c.key, record: c.record });
    }
    this.last = index;
    const root = this.partial.root();
    if (keyed.length > 0) this.roots.push({ index, root });
    return root;
  }

  /**
   * The host applied every entry through index to its tree (index at most the newest written).
   * Reads are then checked against the root after index; what was written up to it is dropped.
   */
  confirm(index: number): void {
    if (index > this.last)
      throw new BkvError(
        ErrorCode.Corrupt,
        `record tree confirmed at ${index}, past the newest write ${this.last}`,
      );
    let root = this.reader.confirmedTree.root;
    for (const r of this.roots) if (r.index <= index) root = r.root;
    this.reader.confirm(index, root);
    this.roots = this.roots.filter((r) => r.index > index);
    for (const [k, d] of this.dirty) if (d.index <= index) this.dirty.delete(k);
    this.partial.prune([...this.dirty.values()].map((d) => d.key));
  }
}
