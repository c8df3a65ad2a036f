/**
 * Token buckets keyed by user or address: capacity tokens, refilled at a steady rate. The table is
 * bounded: when it is full, a new key evicts the least recently used bucket (one, in O(1)), never
 * the whole table, so a sender with many addresses cannot reset the buckets of others (or its own
 * spent one while it keeps using it) by filling the table.
 */

export interface BucketConfig {
  capacity: number;
  refillPerSecond: number;
}

export class RateLimiter {
  /** In order of last use, oldest first (a Map keeps insertion order; a use re-inserts). */
  private buckets = new Map<string, { tokens: number; at: number }>();
  /** Buckets evicted to make room for new keys (for the metrics). */
  evicted = 0;

  constructor(
    private readonly cfg: BucketConfig,
    private readonly now: () => number = () => Date.now(),
    private readonly maxKeys = 100_000,
  ) {}

  /** Take one token for key; false if the bucket is empty. A refused take counts as a use too. */
  take(key: string): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      while (this.buckets.size >= this.maxKeys) this.evictOldest();
      b = { tokens: this.cfg.capacity, at: t };
    } else {
      this.buckets.delete(key);
      // A clock that goes back refills nothing.
      b.tokens = Math.min(
        this.cfg.capacity,
        b.tokens + (Math.max(0, t - b.at) / 1000) * this.cfg.refillPerSecond,
      );
      b.at = Math.max(b.at, t);
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  private evictOldest(): void {
    const oldest = this.buckets.keys().next();
    if (oldest.done === true) return;
    this.buckets.delete(oldest.value);
    this.evicted++;
  }
}
