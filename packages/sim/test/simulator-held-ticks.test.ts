/**
 * The simulator with hosts that hold their HSMs' ticks back and send them bunched (the held-back
 * ticks change: a Tick frame carries a count). Every run keeps the usual adversary and checks the
 * safety invariants after every step, then liveness after healing, linearizability and the guess
 * limit. Here ticks are held five times as often as in the CI seeds (simulator-seeds-*.test.ts,
 * which hold them too), and a fifth of the releases add a day's ticks or fill a frame to its
 * most (MAX_TICKS_PER_FRAME): a host that hurries its HSM's clock as far as one frame allows.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_SIM, simulate } from "../src/index.js";

async function run(nodes: number, from: number, count: number): Promise<Record<string, number>> {
  const failures: string[] = [];
  const stats: Record<string, number> = {};
  for (let seed = from; seed < from + count; seed++) {
    const r = await simulate({ ...DEFAULT_SIM, nodes, seed, tickHoldRate: 0.5 });
    for (const [k, v] of Object.entries(r.stats)) stats[k] = (stats[k] ?? 0) + v;
    if (!r.ok)
      failures.push(
        `seed ${seed} (${nodes} nodes): ${r.failure}\n  replay: npm run sim -- --from ${seed} --seeds 1 --nodes ${nodes} --trace\n${r.trace.slice(-25).join("\n")}`,
      );
  }
  expect(failures).toEqual([]);
  return stats;
}

describe("simulator: hosts hold ticks back and send them bunched", () => {
  it("20 seeds on 3 nodes and 10 on 5: no invariant, liveness, linearizability or guess-limit violation", async () => {
    const three = await run(3, 30001, 20);
    const five = await run(5, 40001, 10);
    for (const s of [three, five]) {
      expect(s["tick-hold"] ?? 0).toBeGreaterThan(20);
      expect(s["tick-bunch"] ?? 0).toBeGreaterThan(20);
      expect(s["tick-frame-full"] ?? 0).toBeGreaterThan(0);
      expect(s.opsAnswered ?? 0).toBeGreaterThan(10);
      // The rest of the adversary was there too.
      for (const power of ["rollback", "replay", "restart", "partition"])
        expect(s[power] ?? 0, power).toBeGreaterThan(0);
    }
  }, 300_000);
});
