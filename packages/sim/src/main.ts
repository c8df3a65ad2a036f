/**
 * `npm run sim -- [--from S] [--seeds N] [--nodes 3|5|…] [--steps K]`: run N seeds of the simulator
 * and print a summary; a failing seed is printed with its failure and trace, and replays exactly
 * with `--from S --seeds 1 --trace`.
 */
import { parseArgs } from "node:util";
import { DEFAULT_SIM, simulate } from "./simulate.js";

async function run(): Promise<number> {
  const { values } = parseArgs({
    options: {
      from: { type: "string" },
      seeds: { type: "string" },
      nodes: { type: "string" },
      steps: { type: "string" },
      trace: { type: "boolean" },
    },
    strict: true,
  });
  const from = Number(values.from ?? 1);
  const seeds = Number(values.seeds ?? 100);
  const nodes = Number(values.nodes ?? DEFAULT_SIM.nodes);
  const steps = Number(values.steps ?? DEFAULT_SIM.steps);
  for (const [k, v] of Object.entries({ from, seeds, nodes, steps })) {
    if (!Number.isInteger(v) || v < 0) {
      process.stderr.write(`sim: --${k} must be a whole number\n`);
      return 2;
    }
  }
  const totals: Record<string, number> = {};
  let failed = 0;
  const t0 = performance.now();
  for (let seed = from; seed < from + seeds; seed++) {
    const r = await simulate({ ...DEFAULT_SIM, nodes, steps, seed });
    for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (values.trace === true) process.stdout.write(`${r.trace.join("\n")}\n`);
    if (!r.ok) {
      failed++;
      process.stdout.write(
        `\nseed ${seed} FAILED: ${r.failure}\ntrace (replay: npm run sim -- --from ${seed} --seeds 1 --nodes ${nodes} --steps ${steps} --trace):\n`,
      );
      process.stdout.write(`${r.trace.slice(-60).join("\n")}\n`);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(
    `\n${seeds} seeds (${from}..${from + seeds - 1}), ${nodes} nodes, ${steps} steps each, ${secs.toFixed(1)} s: ` +
      `${seeds - failed} passed, ${failed} failed\n` +
      `operations ${totals.operations ?? 0} (answered ${totals.opsAnswered ?? 0}), crashes ${totals.crash ?? 0}, ` +
      `restarts ${totals.restart ?? 0}, storage rollbacks ${totals.rollback ?? 0}, partitions ${totals.partition ?? 0}, ` +
      `replayed ${totals.replay ?? 0} (refused ${totals.replaysRefused ?? 0}), forged ${totals.forge ?? 0} (refused ${totals.forgedRefused ?? 0})\n`,
  );
  return failed === 0 ? 0 : 1;
}

run().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`sim: ${(e as Error).stack}\n`);
    process.exitCode = 1;
  },
);
