/**
 * CI seeds of the deterministic simulator, part c: 100 seeds on 5 nodes from seed 10001 (with the
 * other simulator-seeds-*.test.ts files, 300 seeds across 3 and 5 nodes, run on separate workers).
 * Every step checks the safety invariants (src/safety.ts); every run ends with a liveness check and
 * the linearizability and guess-limit checkers. More by hand: `npm run sim -- --seeds 10000`.
 */
import { describe, it } from "vitest";
import { expectSeedsClean } from "./sim-seeds.js";

describe("deterministic simulator", () => {
  it("100 seeds on 5 nodes from 10001: no invariant, liveness, linearizability or guess-limit violation", async () => {
    await expectSeedsClean(5, 10001, 100, { refusedPuts: false });
  }, 600_000);
});
