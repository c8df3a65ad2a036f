/**
 * Reading one user's record from the host's record tree (docs/record-tree.md §2). The HSM knows
 * the root of the tree as of the last log index its host confirmed having applied; the host answers
 * a read with the index its tree is at, the record blob (or none) and a proof. Accepted only if the
 * index is that confirmed one, the blob opens under the fleet's record key at this user's key, holds
 * this user's record, and the proof puts exactly that record (or no record) under the root.
 *
 * Everything a host can say wrongly is refused before any decision is made on it: RECORD_PROOF for
 * a lie (an old blob or proof, a changed byte, another user's blob, "none" for a record that
 * exists, the proof of a destroyed record, a whole older tree presented as current), UNAVAILABLE
 * (retryable, nothing learned) for an answer from another tree index than the confirmed one, which
 * an honest host gives when its tree moved on between the question and the answer.
 */
import { BkvError, ErrorCode } from "@bkv/wire";
import type { HsmCrypto } from "./platform.js";
import { decodeRecord, openRecord, type RecordSecrets } from "./record-codec.js";
import { type RecordTree, recordKey, type VerifiedPath } from "./record-tree.js";
import type { VaultRecord } from "./state.js";

/** A host's answer to a record read. */
export interface RecordAnswer {
  /** The log index the host's tree reflects. */
  treeIndex: number;
  /** The sealed record, or null: the host says the user has none. */
  blob: Uint8Array | null;
  /** The encoded proof (wire/src/record-tree-format.ts). */
  proof: Uint8Array;
}

export interface RecordRead {
  /** The user's record in the confirmed tree, or null: none. */
  record: VaultRecord | null;
  /** The verified path (for PartialTree.absorb, to compute the next root). */
  path: VerifiedPath;
}

export class RecordReader {
  private confirmed: { index: number; root: Uint8Array };

  constructor(
    private readonly tree: RecordTree,
    private readonly crypto: Pick<HsmCrypto, "aeadOpen">,
    private readonly secrets: RecordSecrets,
    confirmed: { index: number; root: Uint8Array },
  ) {
    this.confirmed = { index: confirmed.index, root: confirmed.root.slice() };
  }

  /** The tree index and root the host last confirmed, which reads are checked against. */
  get confirmedTree(): { index: number; root: Uint8Array } {
    return { index: this.confirmed.index, root: this.confirmed.root.slice() };
  }

  /**
   * The host confirmed its tree at index with this root (the root the HSM computed for that index,
   * never one the host reports). The confirmed index never goes back: CORRUPT if it would.
   */
  confirm(index: number, root: Uint8Array): void {
    if (index < this.confirmed.index) {
      throw new BkvError(
        ErrorCode.Corrupt,
        `record tree confirmed at ${index}, behind ${this.confirmed.index} confirmed before`,
      );
    }
    this.confirmed = { index, root: root.slice() };
  }

  keyOf(user: string): Uint8Array {
    return recordKey(this.tree.sha256, this.secrets.keySecret, user);
  }

  async read(user: string, answer: RecordAnswer): Promise<RecordRead> {
    const { index, root } = this.confirmed;
    if (answer.treeIndex !== index) {
      throw new BkvError(
        ErrorCode.Unavailable,
        `the host answered from its tree at ${answer.treeIndex}, not at ${index}: ask again`,
      );
    }
    const key = this.keyOf(user);
    if (answer.blob === null) return { record: null, path: this.tree.verify(root, key, null, answer.proof) };
    const plaintext = await openRecord(this.crypto, this.secrets, key, answer.blob);
    let found: { user: string; record: VaultRecord };
    try {
      found = decodeRecord(plaintext);
    } catch (e) {
      // Only a member of this fleet can seal under its key: a blob that opens but does not decode
      // is this code's own fault, not a host's lie.
      throw new BkvError(
        ErrorCode.Corrupt,
        `a record blob of this fleet does not decode: ${(e as Error).message}`,
      );
    }
    if (found.user !== user) {
      throw new BkvError(ErrorCode.RecordProof, "the record blob at this key is another user's");
    }
    const path = this.tree.verify(root, key, this.tree.valueHash(key, plaintext), answer.proof);
    return { record: found.record, path };
  }
}
