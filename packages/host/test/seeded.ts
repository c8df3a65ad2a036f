import type { VaultRecord } from "@bkv/hsm-core";

/** A small seeded generator (mulberry32) for the record tree tests: the same seed, the same run. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A user's record with this many guesses used; fill varies its bytes. */
export function rec(guessesUsed: number, fill = 1): VaultRecord {
  return {
    credential: new Uint8Array(16).fill(fill),
    registration: new Uint8Array(192).fill(fill + 1),
    wrappedKey: new Uint8Array(60).fill(fill + 2),
    guessesUsed,
    guessSeq: guessesUsed,
    pending: new Map(),
  };
}
