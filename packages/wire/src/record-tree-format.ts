/**
 * The record tree's format, shared by the HSM (which verifies) and the host (which stores and
 * proves): a sparse Merkle tree of fixed depth over the first `depth` bits of each record's key
 * (32 bytes, HMAC of the user id under a fleet secret). Each leaf position is a *bucket* holding
 * every (key, valueHash) whose key has that prefix, sorted by key (almost always one entry). Empty
 * subtrees have fixed default hashes. Leaves, buckets and inner nodes are domain-separated:
 *
 *   valueHash(k, record) = SHA-256("bkv-tree value v1"  || k || record bytes)
 *   bucket(entries)      = SHA-256("bkv-tree bucket v1" || u32 n || (k || valueHash)*)  (n >= 1)
 *   empty at depth D     = SHA-256("bkv-tree empty v1")
 *   node(left, right)    = SHA-256("bkv-tree node v1"   || left || right)
 *   empty at depth d < D = node(empty(d + 1), empty(d + 1))
 *
 * A proof for key k: a bitmap of `depth` bits (bit i, most significant first: the sibling at depth
 * i + 1 on k's path is not empty), those siblings top-down, and the other entries of k's bucket.
 * Pure and browser-safe: SHA-256 is passed in.
 */

import { concatBytes, utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";

/** Bits of the key that place it in the tree. */
export const RECORD_TREE_DEPTH = 64;
export const RECORD_KEY_BYTES = 32;
/** Entries a bucket may hold (keys are HMAC outputs: two sharing 64 bits are already rare). */
export const MAX_BUCKET_ENTRIES = 16;

export type Sha256 = (data: Uint8Array) => Uint8Array;

export interface BucketEntry {
  key: Uint8Array;
  valueHash: Uint8Array;
}

export interface RecordProof {
  /** depth / 8 bytes; bit i set: the sibling at depth i + 1 is given. */
  bitmap: Uint8Array;
  /** The non-empty siblings on the key's path, from the root's children down. */
  siblings: Uint8Array[];
  /** The bucket's entries other than the key itself, sorted by key. */
  others: BucketEntry[];
}

const VALUE = utf8("bkv-tree value v1");
const BUCKET = utf8("bkv-tree bucket v1");
const EMPTY = utf8("bkv-tree empty v1");
const NODE = utf8("bkv-tree node v1");

export function recordValueHash(sha256: Sha256, key: Uint8Array, record: Uint8Array): Uint8Array {
  return sha256(concatBytes(VALUE, key, record));
}

export function treeNodeHash(sha256: Sha256, left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE, left, right));
}

/** Hash of a non-empty bucket; entries sorted by key. */
export function treeBucketHash(sha256: Sha256, entries: readonly BucketEntry[]): Uint8Array {
  const parts: Uint8Array[] = [BUCKET, new Writer().u32(entries.length).finish()];
  for (const e of entries) parts.push(e.key, e.valueHash);
  return sha256(concatBytes(...parts));
}

/** defaults[d]: the hash of an empty subtree whose root is at depth d (0 = the root, depth = a bucket). */
export function treeDefaults(sha256: Sha256, depth: number): Uint8Array[] {
  const out: Uint8Array[] = new Array(depth + 1);
  out[depth] = sha256(EMPTY);
  for (let d = depth - 1; d >= 0; d--) out[d] = treeNodeHash(sha256, out[d + 1]!, out[d + 1]!);
  return out;
}

/** Bit i of the key (0 = the most significant bit of the first byte): 0 goes left, 1 right. */
export function keyBit(key: Uint8Array, i: number): number {
  return (key[i >> 3]! >> (7 - (i & 7))) & 1;
}

/** Number of leading bits a and b share (at most limit). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array, limit: number): number {
  let i = 0;
  while (i < limit && keyBit(a, i) === keyBit(b, i)) i++;
  return i;
}

/** Strict -1/0/1 comparison of two keys as big-endian numbers. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

export function encodeRecordProof(p: RecordProof): Uint8Array {
  const w = new Writer().fixed(p.bitmap);
  for (const s of p.siblings) w.fixed(s);
  w.u8(p.others.length);
  for (const e of p.others) w.fixed(e.key).fixed(e.valueHash);
  return w.finish();
}

/**
 * Strict decoding: the bitmap of exactly depth bits, exactly as many siblings as bits set, at most
 * MAX_BUCKET_ENTRIES - 1 other entries, nothing after. What the siblings and entries mean is the
 * verifier's question (hsm-core/src/record-tree.ts).
 */
export function decodeRecordProof(b: Uint8Array, depth = RECORD_TREE_DEPTH): RecordProof {
  check(depth > 0 && depth % 8 === 0 && depth <= RECORD_KEY_BYTES * 8, "record proof: bad tree depth");
  const r = new Reader(b, "record proof");
  const bitmap = r.fixed(depth / 8, "bitmap");
  let set = 0;
  for (let i = 0; i < depth; i++) set += keyBit(bitmap, i);
  const siblings: Uint8Array[] = [];
  for (let i = 0; i < set; i++) siblings.push(r.fixed(32, "sibling"));
  const n = r.u8("bucket count");
  check(n < MAX_BUCKET_ENTRIES, `record proof: ${n} other bucket entries, more than allowed`);
  const others: BucketEntry[] = [];
  for (let i = 0; i < n; i++)
    others.push({ key: r.fixed(RECORD_KEY_BYTES, "key"), valueHash: r.fixed(32, "value hash") });
  r.end();
  return { bitmap, siblings, others };
}
