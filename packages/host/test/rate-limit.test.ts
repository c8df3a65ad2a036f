import { describe, expect, it } from "vitest";
import { RateLimiter } from "../src/rate-limit.js";

describe("rate limiter", () => {
  it("allows a burst of capacity, then refills at the configured rate", () => {
    let t = 0;
    const rl = new RateLimiter({ capacity: 3, refillPerSecond: 2 }, () => t);
    expect([rl.take("a"), rl.take("a"), rl.take("a"), rl.take("a")]).toEqual([true, true, true, false]);
    expect(rl.take("b")).toBe(true);
    t = 500;
    expect(rl.take("a")).toBe(true);
    expect(rl.take("a")).toBe(false);
  });

  it("keeps its memory bounded", () => {
    let t = 0;
    const rl = new RateLimiter({ capacity: 1, refillPerSecond: 1 }, () => t, 10);
    for (let i = 0; i < 100; i++) rl.take(`k${i}`);
    expect(rl.size).toBe(10);
    expect(rl.evicted).toBe(90);
    t = 10_000;
    expect(rl.take("k0")).toBe(true);
  });

  it("attack: a sender with many addresses fills the table but resets no bucket still in use", () => {
    const t = 0;
    const rl = new RateLimiter({ capacity: 2, refillPerSecond: 0.001 }, () => t, 100);
    // The victim (and the attacker's own main address) spend their buckets.
    for (const k of ["victim", "main"]) {
      expect([rl.take(k), rl.take(k), rl.take(k)]).toEqual([true, true, false]);
    }
    // Many fresh addresses, more than the table holds, with the spent keys still in use meanwhile.
    for (let i = 0; i < 1000; i++) {
      rl.take(`10.0.${i >> 8}.${i & 0xff}`);
      if (i % 50 === 0) {
        expect(rl.take("victim")).toBe(false);
        expect(rl.take("main")).toBe(false);
      }
    }
    expect(rl.size).toBe(100);
    // Today's table would have emptied itself and handed both full buckets again.
    expect(rl.take("victim")).toBe(false);
    expect(rl.take("main")).toBe(false);
  });

  it("evicts the least recently used bucket first", () => {
    const t = 0;
    const rl = new RateLimiter({ capacity: 1, refillPerSecond: 0.001 }, () => t, 3);
    rl.take("a");
    rl.take("b");
    rl.take("c");
    rl.take("a"); // a is now the newest; b the oldest
    rl.take("d"); // evicts b
    expect(rl.take("a")).toBe(false);
    expect(rl.take("c")).toBe(false);
    expect(rl.take("b")).toBe(true); // a new bucket: b was evicted
  });

  it("a clock that goes back refills nothing", () => {
    let t = 10_000;
    const rl = new RateLimiter({ capacity: 1, refillPerSecond: 1 }, () => t);
    expect(rl.take("a")).toBe(true);
    t = 0;
    expect(rl.take("a")).toBe(false);
    t = 10_000;
    expect(rl.take("a")).toBe(false);
  });
});
