/**
 * RFC 9162 (RFC 6962) Merkle trees over SHA-256: leaf and node hashes, roots, inclusion and
 * consistency proofs (generation from a source of subtree hashes, and verification).
 *
 * Proof generation is split in two steps so the same code serves an in-memory tree and a tiled
 * log read over the network: `*Nodes` functions name the perfect subtrees a proof needs (no
 * hashing), then `fold` combines their hashes. A *perfect subtree* (level L, index i) is the
 * Merkle Tree Hash of the 2^L leaves [i·2^L, (i+1)·2^L).
 *
 * Sizes and indexes are JavaScript numbers: safe integers, so trees up to 2^53 - 1 leaves.
 */
import {
  bytesEqual,
  checkProofHashes,
  HASH_SIZE,
  leafHashWith,
  nodeHashWith,
  verifyInclusionWith,
} from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";
import { isSize } from "./encoding.js";
import { ensure, TlogError, TlogErrorCode } from "./errors.js";

export { HASH_SIZE };

/** MTH of one entry: SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  return leafHashWith(sha256, entry);
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return nodeHashWith(sha256, left, right);
}

/** MTH of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** A perfect subtree: the 2^level leaves starting at index·2^level. */
export interface NodeId {
  readonly level: number;
  readonly index: number;
}

/** Anything that can give the hash of a perfect subtree of the tree it holds. */
export interface HashSource {
  hashAt(level: number, index: number): Uint8Array;
}

/** One proof element (or a root): the fold of these perfect subtrees, left to right. */
export type NodeRange = readonly NodeId[];

function largestPowerOfTwoBelow(n: number): number {
  // n >= 2: the largest k = 2^j with k < n.
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function log2(k: number): number {
  let l = 0;
  while (2 ** l < k) l++;
  return l;
}

/**
 * The perfect subtrees, largest first, whose fold is MTH(D[start:end]). Holds for every range
 * the RFC 9162 recursion produces, whose start is a multiple of a power of two >= its length.
 */
export function rangeNodes(start: number, end: number): NodeId[] {
  ensure(
    isSize(start) && isSize(end) && start < end,
    TlogErrorCode.Range,
    `no subtree spans [${start}, ${end})`,
  );
  const out: NodeId[] = [];
  let at = start;
  while (at < end) {
    let k = 1;
    while (k * 2 <= end - at) k *= 2;
    ensure(at % k === 0, TlogErrorCode.Range, `[${start}, ${end}) is not an RFC 9162 subtree range`);
    out.push({ level: log2(k), index: at / k });
    at += k;
  }
  return out;
}

/** Fold perfect-subtree hashes (left to right, as rangeNodes lists them) into one MTH. */
export function fold(hashes: readonly Uint8Array[]): Uint8Array {
  ensure(hashes.length > 0, TlogErrorCode.Range, "nothing to fold");
  let h = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) h = nodeHash(hashes[i]!, h);
  return h;
}

/** The perfect subtrees whose fold is the root of a tree of `size` leaves (size > 0). */
export function rootNodes(size: number): NodeRange {
  ensure(isSize(size) && size > 0, TlogErrorCode.Range, `the empty tree has no subtrees (size ${size})`);
  return rangeNodes(0, size);
}

/** RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as node ranges, leaf end first. */
export function inclusionProofNodes(index: number, size: number): NodeRange[] {
  ensure(
    isSize(index) && isSize(size) && index < size,
    TlogErrorCode.Range,
    `no leaf ${index} in a tree of size ${size}`,
  );
  const out: NodeRange[] = [];
  // Walk down from the root, then reverse: the proof lists siblings from the leaf up.
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      out.push(rangeNodes(start + k, start + n));
      n = k;
    } else {
      out.push(rangeNodes(start, start + k));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return out.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]) as node ranges, 0 < size1 <= size2. */
export function consistencyProofNodes(size1: number, size2: number): NodeRange[] {
  ensure(
    isSize(size1) && isSize(size2) && size1 > 0 && size1 <= size2,
    TlogErrorCode.Range,
    `no consistency proof from size ${size1} to size ${size2}`,
  );
  const out: NodeRange[] = [];
  let start = 0;
  let n = size2;
  let m = size1;
  let b = true;
  // SUBPROOF(m, D[start:start+n], b), unrolled; elements are collected deepest last, then reversed.
  while (m !== n) {
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      out.push(rangeNodes(start + k, start + n));
      n = k;
    } else {
      out.push(rangeNodes(start, start + k));
      start += k;
      m -= k;
      n -= k;
      b = false;
    }
  }
  if (!b) out.push(rangeNodes(start, start + n));
  return out.reverse();
}

function resolve(source: HashSource, range: NodeRange): Uint8Array {
  return fold(range.map((id) => source.hashAt(id.level, id.index)));
}

export function rootFrom(source: HashSource, size: number): Uint8Array {
  if (size === 0) return emptyRoot();
  return resolve(source, rootNodes(size));
}

export function inclusionProofFrom(source: HashSource, index: number, size: number): Uint8Array[] {
  return inclusionProofNodes(index, size).map((r) => resolve(source, r));
}

export function consistencyProofFrom(source: HashSource, size1: number, size2: number): Uint8Array[] {
  return consistencyProofNodes(size1, size2).map((r) => resolve(source, r));
}

function badProof(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadProof, message);
}

/**
 * RFC 9162 §2.1.3.2: check that leafHash is the leaf at `index` of the tree of `size` leaves
 * whose root is `root`. All arguments are attacker-controlled. Throws TLOG_BAD_PROOF. (The check
 * itself is @bkv/wire's verifyInclusionWith, which the HSM core runs with its own SHA-256.)
 */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  verifyInclusionWith(sha256, index, size, leaf, proof, root);
}

/**
 * RFC 9162 §2.1.4.2: check that the tree of size2 leaves with root2 extends the tree of size1
 * leaves with root1. A proof from the empty tree (size1 = 0) is refused: it proves nothing, and
 * callers that accept any tree after an empty one check that themselves. Throws TLOG_BAD_PROOF.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  if (!isSize(size1) || !isSize(size2)) throw badProof(`consistency: bad sizes ${size1}, ${size2}`);
  if (size2 < size1) throw badProof(`consistency: size2 ${size2} is smaller than size1 ${size1}`);
  if (size1 === 0) throw badProof("consistency: a proof from the empty tree proves nothing");
  if (size1 === size2) {
    if (proof.length !== 0) throw badProof("consistency: equal sizes need an empty proof");
    if (!bytesEqual(root1, root2)) throw badProof("consistency: equal sizes but different roots");
    return;
  }
  if (proof.length === 0) throw badProof("consistency: empty proof");
  checkProofHashes(proof, "consistency");
  const path = [...proof];
  // size1 an exact power of two: the old root is itself the first node of the path.
  if (isPowerOfTwo(size1)) path.unshift(root1);
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) throw badProof("consistency: the proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw badProof("consistency: the proof is too short");
  if (!bytesEqual(fr, root1)) throw badProof("consistency: the proof does not lead to the old root");
  if (!bytesEqual(sr, root2)) throw badProof("consistency: the proof does not lead to the new root");
}

/** A growable array of 32-byte hashes in one buffer. */
class HashList {
  private buf = new Uint8Array(HASH_SIZE * 64);
  count = 0;

  push(h: Uint8Array): void {
    if ((this.count + 1) * HASH_SIZE > this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf.set(h, this.count * HASH_SIZE);
    this.count++;
  }

  get(i: number): Uint8Array {
    return this.buf.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE);
  }

  /** Hashes [from, to) concatenated, as a tile holds them. */
  concat(from: number, to: number): Uint8Array {
    return this.buf.slice(from * HASH_SIZE, to * HASH_SIZE);
  }
}

/**
 * An append-only Merkle tree kept in memory: every perfect subtree hash, level by level
 * (about 2 × 32 bytes per leaf), so roots and proofs for any past size cost O(log² n) reads.
 */
export class MerkleTree implements HashSource {
  private readonly levels: HashList[] = [new HashList()];

  static fromLeafHashes(hashes: Iterable<Uint8Array>): MerkleTree {
    const t = new MerkleTree();
    for (const h of hashes) t.append(h);
    return t;
  }

  get size(): number {
    return this.levels[0]!.count;
  }

  /** Append a leaf hash; returns its index. */
  append(leaf: Uint8Array): number {
    ensure(leaf.length === HASH_SIZE, TlogErrorCode.Range, `a leaf hash is ${HASH_SIZE} bytes`);
    const index = this.size;
    let level = 0;
    let i = index;
    let h = leaf;
    this.levels[0]!.push(h);
    while (i % 2 === 1) {
      const list = this.levels[level]!;
      h = nodeHash(list.get(i - 1), h);
      level++;
      i = (i - 1) / 2;
      if (this.levels.length === level) this.levels.push(new HashList());
      this.levels[level]!.push(h);
    }
    return index;
  }

  /** How many perfect subtrees of this level the tree has. */
  countAt(level: number): number {
    return this.levels[level]?.count ?? 0;
  }

  hashAt(level: number, index: number): Uint8Array {
    ensure(
      Number.isInteger(level) && level >= 0 && isSize(index) && index < this.countAt(level),
      TlogErrorCode.Range,
      `no complete subtree at level ${level}, index ${index} in a tree of size ${this.size}`,
    );
    return this.levels[level]!.get(index);
  }

  /** Hashes [from, to) of one level concatenated (a tile's contents). */
  hashesAt(level: number, from: number, to: number): Uint8Array {
    ensure(
      isSize(from) && from <= to && to <= this.countAt(level),
      TlogErrorCode.Range,
      `no hashes [${from}, ${to}) at level ${level} in a tree of size ${this.size}`,
    );
    return this.levels[level]!.concat(from, to);
  }

  root(size = this.size): Uint8Array {
    ensure(isSize(size) && size <= this.size, TlogErrorCode.Range, `no root for size ${size}`);
    return rootFrom(this, size);
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    ensure(size <= this.size, TlogErrorCode.Range, `the tree has only ${this.size} leaves`);
    return inclusionProofFrom(this, index, size);
  }

  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    ensure(size2 <= this.size, TlogErrorCode.Range, `the tree has only ${this.size} leaves`);
    return consistencyProofFrom(this, size1, size2);
  }
}

/** The root of the tree whose leaf hashes these are. */
export function rootFromLeafHashes(hashes: Iterable<Uint8Array>): Uint8Array {
  return MerkleTree.fromLeafHashes(hashes).root();
}
