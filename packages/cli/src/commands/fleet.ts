/**
 * `bkv fleet create`: provision a local fleet's folder and run the genesis ceremony (what `bkv dev`
 * does for a new folder, without starting the hosts).
 * `bkv fleet evidence`: write the fleet's deployment evidence (canonical bytes) for auditors.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { decodeEvidence, decodeStatement, encodeEvidence, toHex } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import { devPaths } from "../dev-files.js";
import { createDevFleet, platformName, readDevFleet } from "../fleet-setup.js";

async function create(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: "string" },
    nodes: { type: "string" },
    "guess-limit": { type: "string" },
    platform: { type: "string" },
  });
  const dir = required(values.dir, "--dir");
  if (readDevFleet(dir) !== null) throw new UsageError(`${dir} already holds a fleet`);
  const count = intFlag(values.nodes, "--nodes", 5, 1, 9);
  if (count % 2 === 0) throw new UsageError("--nodes must be odd (1, 3, 5, 7 or 9)");
  const guessLimit = intFlag(values["guess-limit"], "--guess-limit", DEFAULT_GUESS_LIMIT, 1, 100);
  const fleet = await createDevFleet(dir, count, guessLimit, platformName(values.platform, "software"));
  const p = devPaths(dir);
  process.stdout.write(
    `${JSON.stringify({ fleetId: fleet.fleetId, measurement: fleet.measurement, platform: fleet.platform, evidence: p.evidence, vendorRoot: p.vendorRootPub })}\n`,
  );
  return 0;
}

async function evidence(argv: string[]): Promise<number> {
  const { values } = parse(argv, { dev: { type: "string" }, out: { type: "string" } });
  const p = devPaths(required(values.dev, "--dev"));
  const out = required(values.out, "--out");
  if (!existsSync(p.evidence)) throw new UsageError(`${p.dir} has no evidence: it holds no fleet`);
  const bytes = new Uint8Array(readFileSync(p.evidence));
  // Re-encode: what leaves is the canonical form, or nothing.
  const ev = decodeEvidence(bytes);
  const st = decodeStatement(ev.statement);
  writeFileSync(out, encodeEvidence(ev));
  process.stderr.write(
    `wrote the evidence of fleet ${toHex(st.fleetId)} (${st.members.length} members, measurement ${toHex(st.measurement)}) to ${out}\n`,
  );
  return 0;
}

export async function fleetCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "create") return create(rest);
  if (sub === "evidence") return evidence(rest);
  throw new UsageError("expected 'fleet create' or 'fleet evidence'");
}
