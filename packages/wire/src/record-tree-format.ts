/**
 * The record tree's format, shared by the HSM (which verifies) and the host (which stores and
 * proves): a compact binary Merkle trie over the first `depth` bits of each record's key (32 bytes,
 * HMAC of the user id under a fleet secret). Records whose keys share those bits form a *bucket*
 * (almost always one record), sorted by key. A set of one bucket hashes to that bucket, at whatever
 * depth it sits; a set of two or more buckets hashes to a *branch* at the number of bits all its
 * keys share (t < depth), whose children are the set's part with bit t = 0 and with bit t = 1. No
 * subtree is empty except the empty tree itself, so a key's path has about log2(buckets) branches,
 * not `depth`. Every hash binds what it is and where it is:
 *
 *   valueHash(k, record) = SHA-256("bkv-tree value v1"  || k || record bytes)
 *   bucket(entries)      = SHA-256("bkv-tree bucket v2" || u32 n || (k || valueHash)*)   (1 <= n <= 16)
 *   branch(t, p, l, r)   = SHA-256("bkv-tree branch v2" || u8 t || p || l || r)
 *                          (p: the first ceil(t/8) bytes the keys under it share, bits past t zero)
 *   empty tree           = SHA-256("bkv-tree empty v2")
 *
 * A bucket names its keys and a branch its depth and prefix, so a hash means the same subtree
 * wherever it appears: removing a bucket lifts its sibling subtree into its parent's place
 * unchanged, and the HSM can compute every new root from a proof without knowing what a sibling is.
 *
 * A proof for key k (of presence or of absence), top-down:
 *
 *   u8 n, n x (u8 t, 32-byte sibling)   the branches on k's path (k has their prefix), depths
 *                                       strictly ascending, each with the child k does not go to
 *   u8 kind, then one of                where k's path ends, below the last of them (or the root):
 *     0  empty                          the tree is empty (only with n = 0)
 *     1  u8 m, m x (key, valueHash)     a bucket: k's own without k, or another prefix's (m >= 1)
 *     2  u8 t, prefix, 32 left, 32 right   a branch whose prefix k does not have
 *
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

/** A branch on the key's path: its depth and the hash of the child the key does not go to. */
export interface ProofStep {
  depth: number;
  sibling: Uint8Array;
}

/** Where a key's path ends. */
export type ProofEnd =
  | { kind: "empty" }
  /** A bucket: the key's own without the key itself, or all of another prefix's. */
  | { kind: "bucket"; entries: BucketEntry[] }
  /** A branch whose prefix the key does not have; prefix is ceil(depth / 8) bytes. */
  | { kind: "branch"; depth: number; prefix: Uint8Array; left: Uint8Array; right: Uint8Array };

export interface RecordProof {
  path: ProofStep[];
  end: ProofEnd;
}

const VALUE = utf8("bkv-tree value v1");
const BUCKET = utf8("bkv-tree bucket v2");
const BRANCH = utf8("bkv-tree branch v2");
const EMPTY = utf8("bkv-tree empty v2");

export function recordValueHash(sha256: Sha256, key: Uint8Array, record: Uint8Array): Uint8Array {
  return sha256(concatBytes(VALUE, key, record));
}

/** The first ceil(depth / 8) bytes of key with the bits past depth cleared. */
export function keyPrefix(key: Uint8Array, depth: number): Uint8Array {
  const out = key.slice(0, (depth + 7) >> 3);
  if (depth & 7) out[out.length - 1]! &= (0xff << (8 - (depth & 7))) & 0xff;
  return out;
}

/** Hash of the branch at depth over the keys sharing key's first depth bits (key may be any of them). */
export function treeBranchHash(
  sha256: Sha256,
  depth: number,
  key: Uint8Array,
  left: Uint8Array,
  right: Uint8Array,
): Uint8Array {
  return sha256(concatBytes(BRANCH, Uint8Array.of(depth), keyPrefix(key, depth), left, right));
}

/** Hash of a non-empty bucket; entries sorted by key. */
export function treeBucketHash(sha256: Sha256, entries: readonly BucketEntry[]): Uint8Array {
  const parts: Uint8Array[] = [BUCKET, new Writer().u32(entries.length).finish()];
  for (const e of entries) parts.push(e.key, e.valueHash);
  return sha256(concatBytes(...parts));
}

/** The root of a tree with no records. */
export function treeEmptyRoot(sha256: Sha256): Uint8Array {
  return sha256(EMPTY);
}

/** Bit i of the key (0 = the most significant bit of the first byte): 0 goes left, 1 right. */
export function keyBit(key: Uint8Array, i: number): number {
  return (key[i >> 3]! >> (7 - (i & 7))) & 1;
}

/** Number of leading bits a and b share (at most limit). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array, limit: number): number {
  let i = 0;
  const full = Math.min(limit >> 3, a.length, b.length);
  while (i < full && a[i] === b[i]) i++;
  i <<= 3;
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

/**
 * Encode a proof; MALFORMED for a field that its bytes cannot say (a depth that is not a whole
 * number in 0..255, a hash or key of the wrong length, a prefix not ceil(depth / 8) bytes), never
 * silently truncated: a verifier given a decoded proof re-reads it through these bytes.
 */
export function encodeRecordProof(p: RecordProof): Uint8Array {
  const byte = (v: number, what: string) => {
    check(Number.isInteger(v) && v >= 0 && v <= 255, `record proof: ${what} ${v} is not a byte`);
    return v;
  };
  const sized = (b: Uint8Array, n: number, what: string) => {
    check(b instanceof Uint8Array && b.length === n, `record proof: ${what} must be ${n} bytes`);
    return b;
  };
  const w = new Writer().u8(byte(p.path.length, "path length"));
  for (const s of p.path) w.u8(byte(s.depth, "branch depth")).fixed(sized(s.sibling, 32, "sibling"));
  const e = p.end;
  if (e.kind === "empty") w.u8(0);
  else if (e.kind === "bucket") {
    w.u8(1).u8(byte(e.entries.length, "bucket count"));
    for (const x of e.entries)
      w.fixed(sized(x.key, RECORD_KEY_BYTES, "key")).fixed(sized(x.valueHash, 32, "value hash"));
  } else {
    const d = byte(e.depth, "end branch depth");
    w.u8(2)
      .u8(d)
      .fixed(sized(e.prefix, (d + 7) >> 3, "end branch prefix"))
      .fixed(sized(e.left, 32, "left"))
      .fixed(sized(e.right, 32, "right"));
  }
  return w.finish();
}

/**
 * Strict decoding against a tree depth: depths strictly ascending and below the tree's, an empty
 * end only with no branches, a bucket of 0 to MAX_BUCKET_ENTRIES entries, an end branch below the
 * last step with its prefix's unused bits zero, nothing after. What the hashes and entries mean is
 * the verifier's question (hsm-core/src/record-tree.ts).
 */
export function decodeRecordProof(b: Uint8Array, depth = RECORD_TREE_DEPTH): RecordProof {
  check(depth > 0 && depth % 8 === 0 && depth <= 255, "record proof: bad tree depth");
  const r = new Reader(b, "record proof");
  const n = r.u8("path length");
  check(n <= depth, "record proof: more branches than the tree is deep");
  const path: ProofStep[] = [];
  let last = -1;
  for (let i = 0; i < n; i++) {
    const d = r.u8("branch depth");
    check(d > last && d < depth, "record proof: branch depths must ascend within the tree");
    path.push({ depth: d, sibling: r.fixed(32, "sibling") });
    last = d;
  }
  const kind = r.u8("end kind");
  let end: ProofEnd;
  if (kind === 0) {
    check(n === 0, "record proof: an empty end below a branch");
    end = { kind: "empty" };
  } else if (kind === 1) {
    const m = r.u8("bucket count");
    check(m <= MAX_BUCKET_ENTRIES, `record proof: ${m} bucket entries, more than allowed`);
    const entries: BucketEntry[] = [];
    for (let i = 0; i < m; i++)
      entries.push({ key: r.fixed(RECORD_KEY_BYTES, "key"), valueHash: r.fixed(32, "value hash") });
    end = { kind: "bucket", entries };
  } else {
    check(kind === 2, `record proof: unknown end kind ${kind}`);
    const d = r.u8("end branch depth");
    check(d > last && d < depth, "record proof: the end branch must lie below the path");
    const prefix = r.fixed((d + 7) >> 3, "end branch prefix");
    check(
      d % 8 === 0 || (prefix[prefix.length - 1]! & (0xff >> (d & 7))) === 0,
      "record proof: end branch prefix has bits past its depth",
    );
    end = { kind: "branch", depth: d, prefix, left: r.fixed(32, "left"), right: r.fixed(32, "right") };
  }
  r.end();
  return { path, end };
}
