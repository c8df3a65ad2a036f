/**
 * Lowe's memoization: the set of (linearized operations, model state) configurations already
 * explored. The set of operations is a bitset with an incrementally maintained Zobrist hash; the
 * hash only picks a bucket, membership is decided by exact comparison.
 */

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Bitset {
  readonly words: Uint32Array;
  private readonly zobrist: Uint32Array;
  private h1 = 0;
  private h2 = 0;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
    this.zobrist = new Uint32Array(2 * size);
    const next = prng(0x5eed);
    for (let i = 0; i < this.zobrist.length; i++) this.zobrist[i] = next();
  }

  has(i: number): boolean {
    return (this.words[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  set(i: number): void {
    if (this.has(i)) return;
    this.words[i >>> 5]! |= 1 << (i & 31);
    this.toggleHash(i);
  }

  clear(i: number): void {
    if (!this.has(i)) return;
    this.words[i >>> 5]! &= ~(1 << (i & 31));
    this.toggleHash(i);
  }

  /** A hash of the set (equal sets, equal hashes). */
  hash(): string {
    return `${this.h1 >>> 0}.${this.h2 >>> 0}`;
  }

  equals(words: Uint32Array): boolean {
    for (let i = 0; i < words.length; i++) if (words[i] !== this.words[i]) return false;
    return true;
  }

  private toggleHash(i: number): void {
    this.h1 ^= this.zobrist[2 * i]!;
    this.h2 ^= this.zobrist[2 * i + 1]!;
  }
}

export class Memo {
  private readonly seen = new Map<string, Uint32Array[]>();

  /** Records (set, state); false if it was already recorded. */
  add(set: Bitset, stateHash: string): boolean {
    const key = `${set.hash()}|${stateHash}`;
    const bucket = this.seen.get(key);
    if (bucket === undefined) {
      this.seen.set(key, [set.words.slice()]);
      return true;
    }
    if (bucket.some((w) => set.equals(w))) return false;
    bucket.push(set.words.slice());
    return true;
  }
}
