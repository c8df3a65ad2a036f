/**
 * Runs a range of simulator seeds for the CI test files (simulator-*.test.ts, split so vitest runs
 * them on several workers) and collects every failing seed with its failure and the end of its trace.
 */
import { expect } from "vitest";
import { DEFAULT_SIM, simulate } from "../src/index.js";

export interface SeedRun {
  failures: string[];
  answered: number;
  stats: Record<string, number>;
}

export async function runSeeds(nodes: number, from: number, count: number): Promise<SeedRun> {
  const failures: string[] = [];
  const stats: Record<string, number> = {};
  let answered = 0;
  for (let seed = from; seed < from + count; seed++) {
    const r = await simulate({ ...DEFAULT_SIM, nodes, seed });
    answered += r.stats.opsAnswered ?? 0;
    for (const [k, v] of Object.entries(r.stats)) stats[k] = (stats[k] ?? 0) + v;
    if (!r.ok)
      failures.push(
        `seed ${seed} (${nodes} nodes): ${r.failure}\n  replay: npm run sim -- --from ${seed} --seeds 1 --nodes ${nodes} --trace\n${r.trace.slice(-25).join("\n")}`,
      );
  }
  return { failures, answered, stats };
}

/**
 * Run the seeds and assert: no failing seed, real work done, the adversary used its powers, and the
 * clients' refused registrations were exercised.
 */
export async function expectSeedsClean(
  nodes: number,
  from: number,
  count: number,
  { refusedPuts = true }: { refusedPuts?: boolean } = {},
): Promise<void> {
  const r = await runSeeds(nodes, from, count);
  expect(r.failures).toEqual([]);
  expect(r.answered).toBeGreaterThan(100);
  for (const power of [
    "rollback",
    "replay",
    "restart",
    "withhold-confirm",
    "crash-mid-write",
    "nvram-fail",
    "tick-hold",
    "tick-bunch",
  ])
    expect(r.stats[power] ?? 0, power).toBeGreaterThan(0);
  // Registrations without replace that met a record (RECORD_EXISTS) went through the checkers too
  // (5-node runs answer fewer operations; seeds 10001..10100 happen to have none).
  if (refusedPuts) expect(r.stats["record-exists"] ?? 0, "record-exists").toBeGreaterThan(0);
}
