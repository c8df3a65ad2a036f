/**
 * `npm run sim -- [--from S] [--seeds N] [--nodes 3|5|…] [--steps K] [--without p,q] [--brief] [--help]`:
 * run N seeds of the simulator and print a summary; a failing seed is printed with its failure and
 * the end of its trace (only the failure with --brief), and replays exactly with
 * `--from S --seeds 1 --trace`. --without leaves adversary powers out (simulate.ts, SimOptions).
 */
import { parseArgs } from "node:util";
import { DEFAULT_SIM, simulate } from "./simulate.js";

const USAGE = `usage: npm run sim -- [--from S] [--seeds N] [--nodes 3|5|…] [--steps K] [--without p,q] [--brief] [--trace]
  --from S       first seed (default 1)
  --seeds N      how many seeds to run (default 100)
  --nodes N      fleet size (default ${DEFAULT_SIM.nodes})
  --steps K      scheduler steps per seed (default ${DEFAULT_SIM.steps})
  --without p,q  leave these adversary powers out (see SimOptions in packages/sim/src/simulate.ts)
  --brief        print only the failure of a failing seed, not the end of its trace
  --trace        print every seed's whole trace
exit 0: every seed passed; 1: a seed failed; 2: bad arguments
`;

async function run(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions();
  } catch (e) {
    process.stderr.write(`sim: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values } = parsed;
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  return simulateSeeds(values);
}

function parseOptions() {
  return parseArgs({
    options: {
      from: { type: "string" },
      seeds: { type: "string" },
      nodes: { type: "string" },
      steps: { type: "string" },
      trace: { type: "boolean" },
      without: { type: "string" },
      brief: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
}

async function simulateSeeds(values: ReturnType<typeof parseOptions>["values"]): Promise<number> {
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
  const without = values.without === undefined ? [] : values.without.split(",").filter((x) => x !== "");
  const totals: Record<string, number> = {};
  const cpu0 = process.cpuUsage();
  let failed = 0;
  const t0 = performance.now();
  for (let seed = from; seed < from + seeds; seed++) {
    const r = await simulate({ ...DEFAULT_SIM, nodes, steps, seed, without });
    for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (values.trace === true) process.stdout.write(`${r.trace.join("\n")}\n`);
    if (!r.ok) {
      failed++;
      const w = without.length > 0 ? ` --without ${without.join(",")}` : "";
      process.stdout.write(`seed ${seed} FAILED: ${r.failure}\n`);
      if (values.brief !== true) {
        process.stdout.write(
          `trace (replay: npm run sim -- --from ${seed} --seeds 1 --nodes ${nodes} --steps ${steps}${w} --trace):\n`,
        );
        process.stdout.write(`${r.trace.slice(-60).join("\n")}\n\n`);
      }
    }
  }
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  const cpu = (c.user + c.system) / 1e6;
  process.stdout.write(
    `\n${seeds} seeds (${from}..${from + seeds - 1}), ${nodes} nodes, ${steps} steps each, ${secs.toFixed(1)} s ` +
      `(CPU ${cpu.toFixed(1)} s, ${(cpu / Math.max(1, seeds)).toFixed(2)} s per seed): ` +
      `${seeds - failed} passed, ${failed} failed\n` +
      `operations ${totals.operations ?? 0} (answered ${totals.opsAnswered ?? 0}), crashes ${totals.crash ?? 0}, ` +
      `restarts ${totals.restart ?? 0}, storage rollbacks ${totals.rollback ?? 0}, partitions ${totals.partition ?? 0}, ` +
      `replayed ${totals.replay ?? 0} (refused ${totals.replaysRefused ?? 0}), forged ${totals.forge ?? 0} (refused ${totals.forgedRefused ?? 0}), ` +
      `writes unconfirmed ${totals["withhold-confirm"] ?? 0}, delayed ${totals["delay-write"] ?? 0}, partial ${(totals["crash-mid-write"] ?? 0) + (totals["partial-write"] ?? 0)}, ` +
      `NVRAM failures ${totals["nvram-fail"] ?? 0}, HSM restarts ${totals["restart-hsm"] ?? 0}, one-way cuts ${totals["one-way-cut"] ?? 0}, boots refused ${totals["boot-refused"] ?? 0}, ` +
      `ticks held ${totals["tick-hold"] ?? 0} (sent bunched ${totals["tick-bunch"] ?? 0}), ` +
      `registrations refused as existing ${totals["record-exists"] ?? 0}\n`,
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
