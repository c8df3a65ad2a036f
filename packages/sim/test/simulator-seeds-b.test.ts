/**
 * CI seeds of the deterministic simulator, part b: 100 seeds on 3 nodes from seed 101 (with the
 * other simulator-seeds-*.test.ts files, 300 seeds across 3 and 5 nodes, run on separate workers).
 * Every step checks the safety invariants (src/safety.ts); every run ends with a liveness check and
 * the linearizability and guess-limit checkers. More by hand: `npm run sim -- --seeds 10000`.
 */
import { describe, it } from "vitest";
import { expectSeedsClean } from "./sim-seeds.js";

describe("deterministic simulator", () => {
  it("100 seeds on 3 nodes from 101: no invariant, liveness, linearizability or guess-limit violation", async () => {
    await expectSeedsClean(3, 101, 100);
  }, 600_000);
});
