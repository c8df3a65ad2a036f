/**
 * `bkv fleet create`: provision a local fleet's folder and run the genesis ceremony (what `bkv dev`
 * does for a new folder, without starting the hosts). Genesis freezes where the fleet is published:
 * --namespace, --epoch and --log-key (the log's verifier key, `name+hash+base64`).
 * `bkv fleet evidence`: write the fleet's deployment evidence (canonical bytes) for auditors.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { parseVerifierKey, SIG_ED25519 } from "@bkv/tlog";
import { decodeEvidence, decodeStatement, ed25519PointProblem, encodeEvidence, toHex, utf8 } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import { devPaths } from "../dev-files.js";
import { createDevFleet, platformName, readDevFleet } from "../fleet-setup.js";

/** The raw 32-byte Ed25519 key of a log's verifier key (`name+hash+base64(0x01 || key)`). */
export function logKeyFlag(v: string | undefined): Uint8Array {
  const text = required(v, "--log-key");
  let key: ReturnType<typeof parseVerifierKey>;
  try {
    key = parseVerifierKey(text);
  } catch (e) {
    throw new UsageError(`--log-key is not a verifier key (name+hash+base64): ${(e as Error).message}`);
  }
  if (key.type !== SIG_ED25519)
    throw new UsageError("--log-key must be an Ed25519 key (a log's, not a witness's)");
  const problem = ed25519PointProblem(key.publicKey);
  if (problem !== null) throw new UsageError(`--log-key is ${problem}`);
  return key.publicKey;
}

/** A namespace of 1 to 255 bytes of UTF-8. */
export function namespaceFlag(v: string | undefined, dflt: string): string {
  const ns = v ?? dflt;
  const n = utf8(ns).length;
  if (n < 1 || n > 255) throw new UsageError("--namespace must be 1 to 255 bytes");
  return ns;
}

async function create(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: "string" },
    nodes: { type: "string" },
    "guess-limit": { type: "string" },
    platform: { type: "string" },
    namespace: { type: "string" },
    epoch: { type: "string" },
    "log-key": { type: "string" },
  });
  const dir = required(values.dir, "--dir");
  if (readDevFleet(dir) !== null) throw new UsageError(`${dir} already holds a fleet`);
  const count = intFlag(values.nodes, "--nodes", 5, 1, 9);
  if (count % 2 === 0) throw new UsageError("--nodes must be odd (1, 3, 5, 7 or 9)");
  const guessLimit = intFlag(values["guess-limit"], "--guess-limit", DEFAULT_GUESS_LIMIT, 1, 100);
  const namespace = namespaceFlag(values.namespace, "bkv-dev");
  const epoch = intFlag(values.epoch, "--epoch", 1, 0, 0xffffffff);
  const logKey = logKeyFlag(values["log-key"]);
  const fleet = await createDevFleet(
    dir,
    count,
    { guessLimit, namespace, epoch, logKey },
    platformName(values.platform, "software"),
  );
  const p = devPaths(dir);
  process.stdout.write(
    `${JSON.stringify({ fleetId: fleet.fleetId, namespace: fleet.namespace, epoch: fleet.epoch, measurement: fleet.measurement, platform: fleet.platform, evidence: p.evidence, vendorRoot: p.vendorRootPub })}\n`,
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
