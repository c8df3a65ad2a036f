/**
 * The record tree on the HSM's side (format: wire/src/record-tree-format.ts). Records live in the
 * host's storage; the HSM keeps only roots. Here: the record key (HMAC of the user id under a fleet
 * secret, so the host can neither choose colliding keys nor map keys to users), proof verification
 * against a root the HSM holds (any mismatch is RECORD_PROOF), a partial tree that computes new
 * roots from verified proofs (bounded by the keys it touched, never by the number of records), and
 * a streaming root over keys in order (O(depth) memory, about two hashes per record) for checking a
 * whole tree sent by a host.
 * Pure: SHA-256 comes from the platform.
 */
import {
  BkvError,
  type BucketEntry,
  bytesEqual,
  commonPrefixBits,
  compareKeys,
  decodeRecordProof,
  ErrorCode,
  encodeRecordProof,
  keyBit,
  MAX_BUCKET_ENTRIES,
  RECORD_KEY_BYTES,
  RECORD_TREE_DEPTH,
  type RecordProof,
  recordValueHash,
  type Sha256,
  treeBranchHash,
  treeBucketHash,
  treeEmptyRoot,
  utf8,
} from "@bkv/wire";

function proofError(message: string): BkvError {
  return new BkvError(ErrorCode.RecordProof, message);
}

/** HMAC-SHA256 (RFC 2104) over the platform's SHA-256. */
export function hmacSha256(sha256: Sha256, key: Uint8Array, message: Uint8Array): Uint8Array {
  let k = key.length > 64 ? sha256(key) : key;
  const block = new Uint8Array(64);
  block.set(k);
  k = block;
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = k[i]! ^ 0x36;
    outer[i] = k[i]! ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** The record key of a user: HMAC-SHA256(secret, "bkv record key v1" || user). */
export function recordKey(sha256: Sha256, secret: Uint8Array, user: string): Uint8Array {
  return hmacSha256(sha256, secret, utf8(`bkv record key v1\0${user}`));
}

/** What a verified proof says about the key's path in the tree it was verified against. */
export interface VerifiedPath {
  key: Uint8Array;
  /** The key's value hash in that tree, or null: it holds no record for the key. */
  valueHash: Uint8Array | null;
  /** The key's whole bucket (empty: no record shares its prefix), sorted by key. */
  bucket: BucketEntry[];
  /** The branches on the key's path, top-down, each with its own hash in that tree. */
  steps: { depth: number; sibling: Uint8Array; hash: Uint8Array }[];
  /** Where the path ends, with its hash (a bucket's entries are all of that bucket's). */
  end: VerifiedEnd;
}

export type VerifiedEnd =
  | { kind: "empty"; hash: Uint8Array }
  | { kind: "bucket"; entries: BucketEntry[]; hash: Uint8Array }
  | {
      kind: "branch";
      depth: number;
      prefix: Uint8Array;
      left: Uint8Array;
      right: Uint8Array;
      hash: Uint8Array;
    };

/** Hashing and proofs for one tree depth (RECORD_TREE_DEPTH; tests use small ones to fill buckets). */
export class RecordTree {
  readonly emptyRoot: Uint8Array;

  constructor(
    readonly sha256: Sha256,
    readonly depth = RECORD_TREE_DEPTH,
  ) {
    if (!Number.isInteger(depth) || depth < 8 || depth > 248 || depth % 8 !== 0)
      throw new BkvError(ErrorCode.Invalid, `record tree depth ${depth}: a multiple of 8 from 8 to 248`);
    this.emptyRoot = treeEmptyRoot(sha256);
  }

  valueHash(key: Uint8Array, record: Uint8Array): Uint8Array {
    return recordValueHash(this.sha256, key, record);
  }

  branch(depth: number, key: Uint8Array, left: Uint8Array, right: Uint8Array): Uint8Array {
    return treeBranchHash(this.sha256, depth, key, left, right);
  }

  bucketHash(entries: readonly BucketEntry[]): Uint8Array {
    return treeBucketHash(this.sha256, entries);
  }

  samePrefix(a: Uint8Array, b: Uint8Array): boolean {
    const full = this.depth >> 3;
    for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /**
   * Check that proof (bytes from the host, or decoded) shows key holding valueHash (null: no record)
   * in the tree with this root. Throws RECORD_PROOF on anything else: bytes that do not decode, an
   * empty subtree given as a sibling, a path that does not end where the key's does, bucket entries
   * out of order, of mixed prefixes or repeating the key, or a root that does not match.
   */
  verify(
    root: Uint8Array,
    key: Uint8Array,
    valueHash: Uint8Array | null,
    proof: Uint8Array | RecordProof,
  ): VerifiedPath {
    if (key.length !== RECORD_KEY_BYTES) throw proofError("record key must be 32 bytes");
    if (valueHash !== null && valueHash.length !== 32) throw proofError("value hash must be 32 bytes");
    let p: RecordProof;
    try {
      // A proof given decoded is read back through its bytes, so it meets every rule the decoder
      // has (depths whole and ascending, no prefix bits past an end branch's depth): PartialTree
      // trusts what a verified path says about positions, not only its hashes.
      p = decodeRecordProof(proof instanceof Uint8Array ? proof : encodeRecordProof(proof), this.depth);
    } catch (e) {
      throw proofError(`record proof does not decode: ${(e as Error).message}`);
    }
    const last = p.path.at(-1)?.depth ?? -1;
    let end: VerifiedEnd;
    let bucket: BucketEntry[] = [];
    const e = p.end;
    if (e.kind === "empty") {
      if (p.path.length !== 0) throw proofError("record proof: an empty subtree below a branch");
      if (valueHash !== null) throw proofError("record proof: an empty tree for a record claimed present");
      end = { kind: "empty", hash: this.emptyRoot };
    } else if (e.kind === "bucket") {
      let prev: Uint8Array | null = null;
      for (const x of e.entries) {
        if (x.key.length !== RECORD_KEY_BYTES || x.valueHash.length !== 32)
          throw proofError("record proof: bad bucket entry");
        if (!this.samePrefix(x.key, e.entries[0]!.key))
          throw proofError("record proof: a bucket of mixed prefixes");
        if (prev !== null && compareKeys(prev, x.key) >= 0)
          throw proofError("record proof: bucket entries out of order");
        if (bytesEqual(x.key, key)) throw proofError("record proof: bucket repeats the key");
        prev = x.key;
      }
      const own = e.entries.length === 0 || this.samePrefix(e.entries[0]!.key, key);
      let entries: BucketEntry[];
      if (own) {
        entries = e.entries.slice();
        if (valueHash !== null) {
          entries.push({ key, valueHash });
          entries.sort((a, b) => compareKeys(a.key, b.key));
        }
        if (entries.length === 0) throw proofError("record proof: an empty bucket");
        bucket = entries;
      } else {
        if (valueHash !== null) throw proofError("record proof: the path ends at another prefix's bucket");
        if (commonPrefixBits(e.entries[0]!.key, key, this.depth) <= last)
          throw proofError("record proof: the end bucket is not on the key's side of its parent");
        entries = e.entries;
      }
      if (entries.length > MAX_BUCKET_ENTRIES) throw proofError("record proof: bucket too large");
      end = { kind: "bucket", entries, hash: this.bucketHash(entries) };
    } else {
      if (valueHash !== null) throw proofError("record proof: the path ends at a branch");
      const c = commonPrefixBits(e.prefix, key, e.depth);
      if (c <= last) throw proofError("record proof: the end branch is not on the key's side of its parent");
      if (c >= e.depth) throw proofError("record proof: the path ends at a branch the key lies under");
      if (bytesEqual(e.left, this.emptyRoot) || bytesEqual(e.right, this.emptyRoot))
        throw proofError("record proof: an empty subtree under a branch");
      end = { ...e, hash: this.branch(e.depth, e.prefix, e.left, e.right) };
    }
    const steps: VerifiedPath["steps"] = new Array(p.path.length);
    let h = end.hash;
    for (let i = p.path.length - 1; i >= 0; i--) {
      const s = p.path[i]!;
      if (bytesEqual(s.sibling, this.emptyRoot))
        throw proofError("record proof: an empty subtree as a sibling");
      h =
        keyBit(key, s.depth) === 1
          ? this.branch(s.depth, key, s.sibling, h)
          : this.branch(s.depth, key, h, s.sibling);
      steps[i] = { depth: s.depth, sibling: s.sibling, hash: h };
    }
    if (!bytesEqual(h, root)) throw proofError("record proof does not match the record tree's root");
    return { key, valueHash, bucket, steps, end };
  }
}

function flip(key: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(RECORD_KEY_BYTES);
  out.set(key.subarray(0, RECORD_KEY_BYTES));
  out[bit >> 3]! ^= 0x80 >> (bit & 7);
  return out;
}

/** A subtree known only by its hash, and the first `bits` bits all its keys share (prefix). */
interface Opaque {
  kind: "opaque";
  hash: Uint8Array;
  prefix: Uint8Array;
  bits: number;
}
interface Bucket {
  kind: "bucket";
  entries: BucketEntry[];
  hash: Uint8Array | null;
}
interface Branch {
  kind: "branch";
  depth: number;
  /** A key (or prefix) the keys under it share their first depth bits with. */
  prefix: Uint8Array;
  left: PNode;
  right: PNode;
  /** null: changed, to be recomputed. */
  hash: Uint8Array | null;
}
type PNode = Opaque | Bucket | Branch | { kind: "empty" };

/**
 * The part of the record tree the HSM knows, on top of a root the host holds (base): a trie whose
 * unknown subtrees are held as opaque hashes. Proofs verified against base expand it along their
 * key's path (an opaque subtree is unchanged since base, so base's proof of any key under it shows
 * its insides); writes change it and give the new root. Its size grows with the keys touched since
 * base, never with the number of records; the owner bounds it.
 */
export class PartialTree {
  private top: PNode;

  constructor(
    private readonly tree: RecordTree,
    base: Uint8Array,
  ) {
    this.top = { kind: "opaque", hash: base, prefix: new Uint8Array(RECORD_KEY_BYTES), bits: 0 };
  }

  /** Nodes held (a measure of memory). */
  get size(): number {
    const count = (n: PNode): number => (n.kind === "branch" ? 1 + count(n.left) + count(n.right) : 1);
    return count(this.top);
  }

  root(): Uint8Array {
    return this.hashOf(this.top);
  }

  private hashOf(n: PNode): Uint8Array {
    switch (n.kind) {
      case "opaque":
        return n.hash;
      case "empty":
        return this.tree.emptyRoot;
      case "bucket":
        n.hash ??= this.tree.bucketHash(n.entries);
        return n.hash;
      case "branch":
        n.hash ??= this.tree.branch(n.depth, n.prefix, this.hashOf(n.left), this.hashOf(n.right));
        return n.hash;
    }
  }

  /** The node of a verified proof at step i (steps.length: its end), built from the proof alone. */
  private fromProof(path: VerifiedPath, i: number): PNode {
    const s = path.steps[i];
    if (s !== undefined) {
      const below = this.fromProof(path, i + 1);
      const sib: Opaque = {
        kind: "opaque",
        hash: s.sibling,
        prefix: flip(path.key, s.depth),
        bits: s.depth + 1,
      };
      const right = keyBit(path.key, s.depth) === 1;
      return {
        kind: "branch",
        depth: s.depth,
        prefix: path.key,
        left: right ? sib : below,
        right: right ? below : sib,
        hash: s.hash,
      };
    }
    const e = path.end;
    if (e.kind === "empty") return { kind: "empty" };
    if (e.kind === "bucket") return { kind: "bucket", entries: e.entries.slice(), hash: e.hash };
    const p0 = new Uint8Array(RECORD_KEY_BYTES);
    p0.set(e.prefix);
    const side = (h: Uint8Array, bit: number): Opaque => {
      const prefix = p0.slice();
      if (bit === 1) prefix[e.depth >> 3]! |= 0x80 >> (e.depth & 7);
      return { kind: "opaque", hash: h, prefix, bits: e.depth + 1 };
    };
    return {
      kind: "branch",
      depth: e.depth,
      prefix: p0,
      left: side(e.left, 0),
      right: side(e.right, 1),
      hash: e.hash,
    };
  }

  /** Take in what a proof verified against the base root says about the key's path. */
  absorb(path: VerifiedPath): void {
    const key = path.key;
    let parent: Branch | null = null;
    let cur = this.top;
    for (;;) {
      if (cur.kind === "branch") {
        if (commonPrefixBits(key, cur.prefix, cur.depth) < cur.depth) return; // known: not under it
        parent = cur;
        cur = keyBit(key, cur.depth) === 1 ? cur.right : cur.left;
        continue;
      }
      if (cur.kind !== "opaque") return; // a bucket or the empty tree: known
      if (commonPrefixBits(key, cur.prefix, cur.bits) < cur.bits) return; // known: not under it
      // Unchanged since base and on the key's path there: the proof passes through it.
      const hashes = [...path.steps.map((s) => s.hash), path.end.hash];
      const i = hashes.findIndex((h) => bytesEqual(h, (cur as Opaque).hash));
      if (i < 0)
        throw new BkvError(ErrorCode.Corrupt, "record tree: a proof that does not meet the tree held");
      const node = this.fromProof(path, i);
      if (parent === null) this.top = node;
      else if (parent.left === cur) parent.left = node;
      else parent.right = node;
      return;
    }
  }

  /** The key's value hash in the newest tree (null: none); undefined if its path is not held. */
  get(key: Uint8Array): Uint8Array | null | undefined {
    let cur = this.top;
    for (;;) {
      switch (cur.kind) {
        case "empty":
          return null;
        case "opaque":
          return commonPrefixBits(key, cur.prefix, cur.bits) < cur.bits ? null : undefined;
        case "bucket":
          return cur.entries.find((e) => bytesEqual(e.key, key))?.valueHash ?? null;
        case "branch":
          if (commonPrefixBits(key, cur.prefix, cur.depth) < cur.depth) return null;
          cur = keyBit(key, cur.depth) === 1 ? cur.right : cur.left;
      }
    }
  }

  /**
   * Forget what no longer needs holding: every subtree on none of keep's paths becomes opaque
   * again (its hash and the prefix its keys share). Call after the host confirmed the newest tree
   * but for the keys written since (keep), so that what is held stays bounded by those.
   */
  prune(keep: readonly Uint8Array[]): void {
    const D = this.tree.depth;
    const walk = (n: PNode, keys: readonly Uint8Array[]): PNode => {
      if (n.kind === "branch") {
        const under = keys.filter((k) => commonPrefixBits(k, n.prefix, n.depth) >= n.depth);
        if (under.length === 0)
          return { kind: "opaque", hash: this.hashOf(n), prefix: n.prefix, bits: n.depth };
        n.left = walk(
          n.left,
          under.filter((k) => keyBit(k, n.depth) === 0),
        );
        n.right = walk(
          n.right,
          under.filter((k) => keyBit(k, n.depth) === 1),
        );
        return n;
      }
      if (n.kind === "bucket" && !keys.some((k) => commonPrefixBits(k, n.entries[0]!.key, D) >= D))
        return { kind: "opaque", hash: this.hashOf(n), prefix: n.entries[0]!.key, bits: D };
      return n;
    };
    this.top = walk(this.top, keep);
  }

  /** Set (or with null, remove) the key's value hash; its path must be held. Returns the new root. */
  set(key: Uint8Array, valueHash: Uint8Array | null): Uint8Array {
    if (key.length !== RECORD_KEY_BYTES || (valueHash !== null && valueHash.length !== 32))
      throw new BkvError(ErrorCode.Invalid, "record tree: a key of 32 bytes and a value hash of 32 bytes");
    const D = this.tree.depth;
    const stack: Branch[] = [];
    const replace = (node: PNode) => {
      const p = stack.at(-1);
      if (p === undefined) this.top = node;
      else if (keyBit(key, p.depth) === 1) p.right = node;
      else p.left = node;
    };
    /** Add the key's new bucket beside node, whose keys share only c bits with it. */
    const beside = (node: PNode, c: number) => {
      if (valueHash === null) return; // removing what is not there
      if (node.kind === "opaque" && node.bits < c + 1) {
        node.prefix = flip(key, c);
        node.bits = c + 1;
      }
      const leaf: Bucket = { kind: "bucket", entries: [{ key, valueHash }], hash: null };
      const right = keyBit(key, c) === 1;
      replace({
        kind: "branch",
        depth: c,
        prefix: key,
        left: right ? node : leaf,
        right: right ? leaf : node,
        hash: null,
      });
    };
    let cur = this.top;
    for (;;) {
      if (cur.kind === "branch") {
        const c = commonPrefixBits(key, cur.prefix, cur.depth);
        if (c < cur.depth) {
          beside(cur, c);
          break;
        }
        stack.push(cur);
        cur = keyBit(key, cur.depth) === 1 ? cur.right : cur.left;
        continue;
      }
      if (cur.kind === "opaque") {
        const c = commonPrefixBits(key, cur.prefix, cur.bits);
        if (c >= cur.bits) throw new BkvError(ErrorCode.Corrupt, "record tree: no proof held for this key");
        beside(cur, c);
        break;
      }
      if (cur.kind === "empty") {
        if (valueHash !== null) replace({ kind: "bucket", entries: [{ key, valueHash }], hash: null });
        break;
      }
      const c = commonPrefixBits(key, cur.entries[0]!.key, D);
      if (c < D) {
        beside(cur, c);
        break;
      }
      const entries = cur.entries.filter((e) => !bytesEqual(e.key, key));
      if (valueHash !== null) {
        entries.push({ key, valueHash });
        entries.sort((a, b) => compareKeys(a.key, b.key));
      }
      if (entries.length > MAX_BUCKET_ENTRIES)
        throw new BkvError(ErrorCode.Invalid, "record tree: bucket full");
      if (entries.length > 0) {
        cur.entries = entries;
        cur.hash = null;
      } else {
        // The bucket goes, and with it its parent branch: the other child takes the parent's place.
        const parent = stack.pop();
        if (parent === undefined) this.top = { kind: "empty" };
        else replace(keyBit(key, parent.depth) === 1 ? parent.left : parent.right);
      }
      break;
    }
    for (const b of stack) b.hash = null;
    return this.root();
  }
}

/**
 * The root of a whole tree from its entries in strictly ascending key order, in O(depth) memory: a
 * host's copy of the tree streamed to the HSM is accepted only if this equals the root the HSM
 * knows. About two hashes per record. Throws RECORD_PROOF on keys out of order or repeated, or a
 * bucket over the limit.
 */
export class StreamingRoot {
  /** Finished left parts, each waiting for the branch at `at` that joins it to what follows. */
  private readonly waiting: { hash: Uint8Array; at: number }[] = [];
  private current: BucketEntry[] = [];
  private last: Uint8Array | null = null;
  /** The root once taken: the stream is over (a later add would start a tree without what came before). */
  private done: Uint8Array | null = null;
  count = 0;

  constructor(private readonly tree: RecordTree) {}

  add(key: Uint8Array, valueHash: Uint8Array): void {
    if (this.done !== null)
      throw new BkvError(ErrorCode.Invalid, "record stream: added to after its root was taken");
    if (key.length !== RECORD_KEY_BYTES || valueHash.length !== 32)
      throw proofError("record stream: bad entry");
    if (this.last !== null && compareKeys(this.last, key) >= 0)
      throw proofError("record stream: keys out of order or repeated");
    if (this.last !== null && !this.tree.samePrefix(this.last, key)) {
      const c = commonPrefixBits(this.last, key, this.tree.depth);
      this.waiting.push({ hash: this.close(c), at: c });
    }
    this.current.push({ key, valueHash });
    if (this.current.length > MAX_BUCKET_ENTRIES) throw proofError("record stream: bucket too large");
    this.last = key;
    this.count++;
  }

  /** Hash the current bucket and join it with the waiting parts deeper than c. */
  private close(c: number): Uint8Array {
    const key = this.current[0]!.key;
    let h = this.tree.bucketHash(this.current);
    this.current = [];
    for (let w = this.waiting.at(-1); w !== undefined && w.at > c; w = this.waiting.at(-1)) {
      this.waiting.pop();
      h = this.tree.branch(w.at, key, w.hash, h);
    }
    return h;
  }

  /** The root of everything added; the stream ends here (the same root again, no more adds). */
  root(): Uint8Array {
    this.done ??= this.last === null ? this.tree.emptyRoot : this.close(-1);
    return this.done;
  }
}
