/**
 * RFC 9162 Merkle tree hashes and the inclusion proof check, with SHA-256 passed in: @bkv/tlog
 * (merkle.ts) calls these with its SHA-256, the HSM core with its platform's, so both check a
 * proof with the same code. Everything else about Merkle trees (proof generation, consistency) is
 * in @bkv/tlog.
 */
import { bytesEqual, concatBytes } from "./bytes.js";
import { isSize } from "./tlog-encoding.js";
import { TlogError, TlogErrorCode } from "./tlog-errors.js";

export const HASH_SIZE = 32;

/** SHA-256 (or whatever hash the tree uses) as the caller computes it. */
export type TreeHash = (data: Uint8Array) => Uint8Array;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** MTH of one entry: H(0x00 || entry). */
export function leafHashWith(hash: TreeHash, entry: Uint8Array): Uint8Array {
  return hash(concatBytes(LEAF_PREFIX, entry));
}

/** H(0x01 || left || right). */
export function nodeHashWith(hash: TreeHash, left: Uint8Array, right: Uint8Array): Uint8Array {
  return hash(concatBytes(NODE_PREFIX, left, right));
}

function badProof(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadProof, message);
}

/** Throw TLOG_BAD_PROOF unless every proof hash is HASH_SIZE bytes. */
export function checkProofHashes(proof: readonly Uint8Array[], what: string): void {
  for (const p of proof) {
    if (p.length !== HASH_SIZE)
      throw badProof(`${what}: a proof hash is ${p.length} bytes, not ${HASH_SIZE}`);
  }
}

/**
 * RFC 9162 §2.1.3.2: check that leafHash is the leaf at `index` of the tree of `size` leaves
 * whose root is `root`. All arguments are attacker-controlled. Throws TLOG_BAD_PROOF.
 */
export function verifyInclusionWith(
  hash: TreeHash,
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  if (!isSize(index) || !isSize(size) || index >= size) {
    throw badProof(`inclusion: leaf index ${index} is not in a tree of size ${size}`);
  }
  if (leaf.length !== HASH_SIZE) throw badProof(`inclusion: the leaf hash is ${leaf.length} bytes`);
  checkProofHashes(proof, "inclusion");
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw badProof("inclusion: the proof is longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHashWith(hash, p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHashWith(hash, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw badProof("inclusion: the proof is shorter than the tree is deep");
  if (!bytesEqual(r, root)) throw badProof("inclusion: the proof does not lead to the root");
}
