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
    t = 10_000;
    expect(rl.take("k0")).toBe(true);
  });
});
