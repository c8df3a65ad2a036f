/**
 * The record tree on the HSM's side (format: wire/src/record-tree-format.ts). Records live in the
 * host's storage; the HSM keeps only roots. Here: the record key (HMAC of the user id under a fleet
 * secret, so the host can neither choose colliding keys nor map keys to users), proof verification
 * against a root the HSM holds (any mismatch is RECORD_PROOF), a partial tree that computes new
 * roots from verified proofs (bounded by the keys it touched, never by the number of records), and
 * a streaming root over keys in order (O(depth) memory) for checking a whole tree sent by a host.
 * Pure: SHA-256 comes from the platform.
 */
import {
  BkvError,
  type BucketEntry,
  bytesEqual,
  compareKeys,
  decodeRecordProof,
  ErrorCode,
  keyBit,
  MAX_BUCKET_ENTRIES,
  RECORD_KEY_BYTES,
  RECORD_TREE_DEPTH,
  type RecordProof,
  recordValueHash,
  type Sha256,
  toHex,
  treeBucketHash,
  treeDefaults,
  treeNodeHash,
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
  /** The key's whole bucket (possibly empty), sorted by key. */
  bucket: BucketEntry[];
  /** nodes[d]: the hash at depth d on the key's path (0 = the root, depth = the bucket). */
  nodes: Uint8Array[];
  /** siblings[d] (d = 1..depth): the hash of the sibling at depth d of the key's path. */
  siblings: Uint8Array[];
}

/** Hashing and proofs for one tree depth (RECORD_TREE_DEPTH; tests use small ones to fill buckets). */
export class RecordTree {
  readonly defaults: Uint8Array[];

  constructor(
    readonly sha256: Sha256,
    readonly depth = RECORD_TREE_DEPTH,
  ) {
    this.defaults = treeDefaults(sha256, depth);
  }

  get emptyRoot(): Uint8Array {
    return this.defaults[0]!;
  }

  valueHash(key: Uint8Array, record: Uint8Array): Uint8Array {
    return recordValueHash(this.sha256, key, record);
  }

  node(left: Uint8Array, right: Uint8Array): Uint8Array {
    return treeNodeHash(this.sha256, left, right);
  }

  bucketHash(entries: readonly BucketEntry[]): Uint8Array {
    return entries.length === 0 ? this.defaults[this.depth]! : treeBucketHash(this.sha256, entries);
  }

  samePrefix(a: Uint8Array, b: Uint8Array): boolean {
    const full = this.depth >> 3;
    for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /**
   * Check that proof (bytes from the host, or decoded) shows key holding valueHash (null: no record)
   * in the tree with this root. Throws RECORD_PROOF on anything else: bytes that do not decode, a
   * sibling given where the tree is empty, bucket entries out of order, of another prefix, repeating
   * the key, or a root that does not match.
   */
  verify(
    root: Uint8Array,
    key: Uint8Array,
    valueHash: Uint8Array | null,
    proof: Uint8Array | RecordProof,
  ): VerifiedPath {
    if (key.length !== RECORD_KEY_BYTES) throw proofError("record key must be 32 bytes");
    let p: RecordProof;
    try {
      p = proof instanceof Uint8Array ? decodeRecordProof(proof, this.depth) : proof;
    } catch (e) {
      throw proofError(`record proof does not decode: ${(e as Error).message}`);
    }
    const bucket: BucketEntry[] = [];
    let prev: Uint8Array | null = null;
    let placed = valueHash === null;
    for (const e of p.others) {
      if (e.key.length !== RECORD_KEY_BYTES || e.valueHash.length !== 32)
        throw proofError("record proof: bad bucket entry");
      if (!this.samePrefix(e.key, key)) throw proofError("record proof: bucket entry of another prefix");
      if (prev !== null && compareKeys(prev, e.key) >= 0)
        throw proofError("record proof: bucket entries out of order");
      const c = compareKeys(e.key, key);
      if (c === 0) throw proofError("record proof: bucket repeats the key");
      if (c > 0 && !placed) {
        bucket.push({ key, valueHash: valueHash! });
        placed = true;
      }
      bucket.push(e);
      prev = e.key;
    }
    if (!placed) bucket.push({ key, valueHash: valueHash! });
    if (bucket.length > MAX_BUCKET_ENTRIES) throw proofError("record proof: bucket too large");
    const nodes: Uint8Array[] = new Array(this.depth + 1);
    const siblings: Uint8Array[] = new Array(this.depth + 1);
    let h = this.bucketHash(bucket);
    nodes[this.depth] = h;
    let next = p.siblings.length - 1;
    for (let d = this.depth; d >= 1; d--) {
      let sib = this.defaults[d]!;
      if (keyBit(p.bitmap, d - 1) === 1) {
        sib = p.siblings[next--]!;
        if (bytesEqual(sib, this.defaults[d]!)) throw proofError("record proof: an empty sibling given");
      }
      siblings[d] = sib;
      h = keyBit(key, d - 1) === 1 ? this.node(sib, h) : this.node(h, sib);
      nodes[d - 1] = h;
    }
    if (!bytesEqual(h, root)) throw proofError("record proof does not match the record tree's root");
    return { key, valueHash, bucket, nodes, siblings };
  }
}

function flip(key: Uint8Array, bit: number): Uint8Array {
  const out = key.slice();
  out[bit >> 3]! ^= 0x80 >> (bit & 7);
  return out;
}

/**
 * The nodes of a tree that changed since a root the host holds (base), and the nodes needed to
 * change them: the paths of keys read or written since, and their siblings. A position it holds is
 * what the newest root says; a position it lacks is unchanged since base (every changed node is on
 * a changed key's path), so a proof verified against base supplies it. Its size grows with the
 * keys touched since base, never with the number of records; the owner bounds it.
 */
export class PartialTree {
  private readonly nodes = new Map<string, Uint8Array>();
  private readonly buckets = new Map<string, BucketEntry[]>();

  constructor(
    private readonly tree: RecordTree,
    base: Uint8Array,
  ) {
    this.nodes.set(this.pos(base, 0), base);
  }

  /** Positions held (a measure of memory). */
  get size(): number {
    return this.nodes.size + this.buckets.size;
  }

  root(): Uint8Array {
    return this.nodes.get("0:")!;
  }

  private pos(key: Uint8Array, depth: number): string {
    const bytes = key.subarray(0, (depth + 7) >> 3).slice();
    if (depth & 7) bytes[bytes.length - 1]! &= (0xff << (8 - (depth & 7))) & 0xff;
    return `${depth}:${toHex(bytes)}`;
  }

  private bucketId(key: Uint8Array): string {
    return toHex(key.subarray(0, this.tree.depth >> 3));
  }

  /** Take in what a proof verified against the base root says about positions not yet held. */
  absorb(path: VerifiedPath): void {
    const D = this.tree.depth;
    for (let d = 0; d <= D; d++) {
      const id = this.pos(path.key, d);
      if (!this.nodes.has(id)) this.nodes.set(id, path.nodes[d]!);
      if (d >= 1) {
        const sid = this.pos(flip(path.key, d - 1), d);
        if (!this.nodes.has(sid)) this.nodes.set(sid, path.siblings[d]!);
      }
    }
    const b = this.bucketId(path.key);
    if (!this.buckets.has(b)) this.buckets.set(b, path.bucket.slice());
  }

  /** The key's value hash in the newest tree (null: none); undefined if its path is not held. */
  get(key: Uint8Array): Uint8Array | null | undefined {
    const b = this.buckets.get(this.bucketId(key));
    if (b === undefined) return undefined;
    return b.find((e) => bytesEqual(e.key, key))?.valueHash ?? null;
  }

  /** Set (or with null, remove) the key's value hash; its path must be held (absorbed or set before). */
  set(key: Uint8Array, valueHash: Uint8Array | null): Uint8Array {
    const D = this.tree.depth;
    const bid = this.bucketId(key);
    const old = this.buckets.get(bid);
    if (old === undefined) throw new BkvError(ErrorCode.Corrupt, "record tree: no proof held for this key");
    const bucket = old.filter((e) => !bytesEqual(e.key, key));
    if (valueHash !== null) {
      bucket.push({ key, valueHash });
      bucket.sort((a, b) => compareKeys(a.key, b.key));
    }
    if (bucket.length > MAX_BUCKET_ENTRIES) throw new BkvError(ErrorCode.Invalid, "record tree: bucket full");
    const sibs: Uint8Array[] = [];
    for (let d = D; d >= 1; d--) {
      const s = this.nodes.get(this.pos(flip(key, d - 1), d));
      if (s === undefined) throw new BkvError(ErrorCode.Corrupt, "record tree: a sibling is not held");
      sibs.push(s);
    }
    this.buckets.set(bid, bucket);
    let h = this.tree.bucketHash(bucket);
    this.nodes.set(this.pos(key, D), h);
    for (let d = D; d >= 1; d--) {
      const sib = sibs[D - d]!;
      h = keyBit(key, d - 1) === 1 ? this.tree.node(sib, h) : this.tree.node(h, sib);
      this.nodes.set(this.pos(key, d - 1), h);
    }
    return h;
  }
}

/**
 * The root of a whole tree from its entries in strictly ascending key order, in O(depth) memory: a
 * host's copy of the tree streamed to the HSM is accepted only if this equals the root the HSM
 * knows. Throws RECORD_PROOF on keys out of order or repeated, or a bucket over the limit.
 */
export class StreamingRoot {
  private readonly frontier: (Uint8Array | undefined)[];
  private current: BucketEntry[] = [];
  private last: Uint8Array | null = null;
  count = 0;

  constructor(private readonly tree: RecordTree) {
    this.frontier = new Array(tree.depth + 1);
  }

  add(key: Uint8Array, valueHash: Uint8Array): void {
    if (key.length !== RECORD_KEY_BYTES || valueHash.length !== 32)
      throw proofError("record stream: bad entry");
    if (this.last !== null && compareKeys(this.last, key) >= 0)
      throw proofError("record stream: keys out of order or repeated");
    const head = this.current[0];
    if (head !== undefined && !this.tree.samePrefix(head.key, key)) {
      let c = 0;
      while (keyBit(head.key, c) === keyBit(key, c)) c++;
      this.flush(c + 1);
    }
    this.current.push({ key, valueHash });
    if (this.current.length > MAX_BUCKET_ENTRIES) throw proofError("record stream: bucket too large");
    this.last = key;
    this.count++;
  }

  /** Fold the current bucket up to depth stop; below the root it waits there for its right sibling. */
  private flush(stop: number): Uint8Array {
    const D = this.tree.depth;
    const key = this.current[0]!.key;
    let h = this.tree.bucketHash(this.current);
    this.current = [];
    for (let d = D; d > stop; d--) {
      if (keyBit(key, d - 1) === 1) {
        h = this.tree.node(this.frontier[d] ?? this.tree.defaults[d]!, h);
        this.frontier[d] = undefined;
      } else {
        h = this.tree.node(h, this.tree.defaults[d]!);
      }
    }
    if (stop > 0) this.frontier[stop] = h;
    return h;
  }

  root(): Uint8Array {
    if (this.current.length === 0) return this.tree.emptyRoot;
    return this.flush(0);
  }
}
