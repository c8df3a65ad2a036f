/**
 * `bkv fleet create`: provision a local fleet's folder and run the genesis ceremony (what `bkv dev`
 * does for a new folder, without starting the hosts). Genesis freezes where the fleet is published:
 * --namespace, --epoch and --log-key (the log's verifier key, `name+hash+base64`), and what the
 * fleet will accept of a successor: --release-key (the raw Ed25519 key, 64 hex digits, under which
 * accepted code is released in the log) and --max-successor-guess-limit (1 to --guess-limit,
 * default --guess-limit), and the log's witness policy its successor's log entries are checked under:
 * --witness-key (a witness's cosignature/v1 verifier key, repeated per witness) and
 * --witness-threshold (1 to the number of witness keys).
 * `bkv fleet evidence`: write the fleet's deployment evidence (canonical bytes) for auditors.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CeremonyResult, runCeremony } from "@bkv/host";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { parseVerifierKey, SIG_COSIGNATURE_V1, SIG_ED25519 } from "@bkv/tlog";
import {
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  ed25519PointProblem,
  encodeEvidence,
  fromHex,
  isBkvError,
  toHex,
  utf8,
  type WitnessPolicy,
  witnessPolicyProblem,
} from "@bkv/wire";
import { remoteMember } from "../admin-client.js";
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

/** The raw 32-byte Ed25519 release key (64 hex digits), a strict point. */
export function releaseKeyFlag(v: string | undefined): Uint8Array {
  const text = required(v, "--release-key");
  if (!/^[0-9a-f]{64}$/.test(text))
    throw new UsageError("--release-key must be a raw Ed25519 public key, 64 lowercase hex digits");
  const key = fromHex(text);
  const problem = ed25519PointProblem(key);
  if (problem !== null) throw new UsageError(`--release-key is ${problem}`);
  return key;
}

/** The highest guess limit a successor may have: 1 to the fleet's own (default: the fleet's own). */
export function maxSuccessorFlag(v: string | undefined, guessLimit: number): number {
  return intFlag(v, "--max-successor-guess-limit", guessLimit, 1, guessLimit);
}

/**
 * The witness policy genesis freezes: each --witness-key a cosignature/v1 verifier key
 * (`name+hash+base64(0x04 || key)`), and --witness-threshold (required) 1 to their number; no key or
 * name twice, and not the log's own key (witnessPolicyProblem, the rule the HSMs apply).
 */
export function witnessPolicyFlags(
  keys: string[] | undefined,
  threshold: string | undefined,
  logKey: Uint8Array,
): WitnessPolicy {
  if (keys === undefined || keys.length === 0)
    throw new UsageError(
      "--witness-key is required (a witness's cosignature/v1 verifier key, repeat it per witness)",
    );
  const witnesses = keys.map((text) => {
    let key: ReturnType<typeof parseVerifierKey>;
    try {
      key = parseVerifierKey(text);
    } catch (e) {
      throw new UsageError(`--witness-key is not a verifier key (name+hash+base64): ${(e as Error).message}`);
    }
    if (key.type !== SIG_COSIGNATURE_V1)
      throw new UsageError(
        `--witness-key ${key.name} must be a cosignature/v1 key (a witness's, not a log's)`,
      );
    return { name: key.name, key: key.publicKey };
  });
  const policy = {
    witnesses,
    threshold: intFlag(
      required(threshold, "--witness-threshold"),
      "--witness-threshold",
      1,
      1,
      witnesses.length,
    ),
  };
  const problem = witnessPolicyProblem(policy, logKey);
  if (problem !== null) throw new UsageError(`the witness policy is refused: ${problem}`);
  return policy;
}

/** A namespace of 1 to 255 bytes of UTF-8. */
export function namespaceFlag(v: string | undefined, dflt: string): string {
  const ns = v ?? dflt;
  const n = utf8(ns).length;
  if (n < 1 || n > 255) throw new UsageError("--namespace must be 1 to 255 bytes");
  return ns;
}

async function create(argv: string[]): Promise<number> {
  if (argv.some((a) => a === "--hosts" || a.startsWith("--hosts="))) return createOverNetwork(argv);
  const { values } = parse(argv, {
    dir: { type: "string" },
    nodes: { type: "string" },
    "guess-limit": { type: "string" },
    platform: { type: "string" },
    namespace: { type: "string" },
    epoch: { type: "string" },
    "log-key": { type: "string" },
    "release-key": { type: "string" },
    "max-successor-guess-limit": { type: "string" },
    "witness-key": { type: "string", multiple: true },
    "witness-threshold": { type: "string" },
  });
  const dir = required(values.dir, "--dir");
  if (readDevFleet(dir) !== null) throw new UsageError(`${dir} already holds a fleet`);
  const count = intFlag(values.nodes, "--nodes", 5, 1, 9);
  if (count % 2 === 0) throw new UsageError("--nodes must be odd (1, 3, 5, 7 or 9)");
  const guessLimit = intFlag(values["guess-limit"], "--guess-limit", DEFAULT_GUESS_LIMIT, 1, 100);
  const namespace = namespaceFlag(values.namespace, "bkv-dev");
  const epoch = intFlag(values.epoch, "--epoch", 1, 0, 0xffffffff);
  const logKey = logKeyFlag(values["log-key"]);
  const releaseKey = releaseKeyFlag(values["release-key"]);
  const maxSuccessorGuessLimit = maxSuccessorFlag(values["max-successor-guess-limit"], guessLimit);
  const witnessPolicy = witnessPolicyFlags(
    values["witness-key"] as unknown as string[] | undefined,
    values["witness-threshold"],
    logKey,
  );
  const fleet = await createDevFleet(
    dir,
    count,
    { guessLimit, namespace, epoch, logKey, releaseKey, maxSuccessorGuessLimit, witnessPolicy },
    platformName(values.platform, "software"),
  );
  const p = devPaths(dir);
  process.stdout.write(
    `${JSON.stringify({ fleetId: fleet.fleetId, namespace: fleet.namespace, epoch: fleet.epoch, measurement: fleet.measurement, platform: fleet.platform, evidence: p.evidence, vendorRoot: p.vendorRootPub })}\n`,
  );
  return 0;
}

const LOOPBACK_URL = /^http:\/\/(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?\/?$/;

/**
 * `bkv fleet create --hosts URL,URL,... --admin-key FILE[,FILE...] [--ca FILE] --out DIR --log-key VKEY
 * --release-key HEX --witness-key VKEY... --witness-threshold T [--namespace NS] [--epoch E]
 * [--guess-limit G] [--max-successor-guess-limit M]`: the ceremony through each host's admin listener
 * (URLs in node order), each HSM behind its own host. Writes DIR/evidence.bin, DIR/fleet.json and
 * DIR/ceremony-log.json; nothing else moves between machines.
 */
async function createOverNetwork(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    hosts: { type: "string" },
    "admin-key": { type: "string" },
    ca: { type: "string" },
    out: { type: "string" },
    "guess-limit": { type: "string" },
    namespace: { type: "string" },
    epoch: { type: "string" },
    "log-key": { type: "string" },
    "release-key": { type: "string" },
    "max-successor-guess-limit": { type: "string" },
    "witness-key": { type: "string", multiple: true },
    "witness-threshold": { type: "string" },
  });
  const urls = required(values.hosts, "--hosts")
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  for (const u of urls) {
    if (!/^https?:\/\/[^/]+\/?$/.test(u)) throw new UsageError(`--hosts: ${u} is not http(s)://host:port`);
    // The admin key travels in each request, and whoever answers a host's URL takes its place in
    // the ceremony: plain HTTP only on this machine's loopback.
    if (u.startsWith("http:") && !LOOPBACK_URL.test(u))
      throw new UsageError(`--hosts: ${u} is plain HTTP; the admin listener of another machine needs https`);
  }
  if (new Set(urls).size !== urls.length) throw new UsageError("--hosts lists a host twice");
  if (urls.length % 2 === 0 || urls.length > 9)
    throw new UsageError("--hosts must name an odd number of hosts (1, 3, 5, 7 or 9)");
  // One admin key file for every host, or one per host in the order of --hosts (`bkv host init`
  // makes a key of its own for each host, so that one leaked key does not open them all).
  const keyFiles = required(values["admin-key"], "--admin-key")
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f !== "");
  if (keyFiles.length !== 1 && keyFiles.length !== urls.length)
    throw new UsageError(
      `--admin-key names ${keyFiles.length} files for ${urls.length} hosts: give one, or one per host in the order of --hosts`,
    );
  const adminKeys = keyFiles.map((keyFile) => {
    try {
      return readFileSync(keyFile, "utf8").trim();
    } catch (e) {
      throw new UsageError(`--admin-key ${keyFile}: ${(e as Error).message}`);
    }
  });
  let ca: string | undefined;
  if (values.ca !== undefined) {
    try {
      ca = readFileSync(values.ca, "utf8");
    } catch (e) {
      throw new UsageError(`--ca ${values.ca}: ${(e as Error).message}`);
    }
  }
  const out = required(values.out, "--out");
  if (existsSync(join(out, "evidence.bin"))) throw new UsageError(`${out} already holds a fleet's evidence`);
  const guessLimit = intFlag(values["guess-limit"], "--guess-limit", DEFAULT_GUESS_LIMIT, 1, 100);
  const namespace = namespaceFlag(values.namespace, "bkv-dev");
  const epoch = intFlag(values.epoch, "--epoch", 1, 0, 0xffffffff);
  const logKey = logKeyFlag(values["log-key"]);
  const releaseKey = releaseKeyFlag(values["release-key"]);
  const maxSuccessorGuessLimit = maxSuccessorFlag(values["max-successor-guess-limit"], guessLimit);
  const witnessPolicy = witnessPolicyFlags(
    values["witness-key"] as unknown as string[] | undefined,
    values["witness-threshold"],
    logKey,
  );
  const members = urls.map((url, i) =>
    remoteMember(
      { url, adminKey: adminKeys[keyFiles.length === 1 ? 0 : i]!, ...(ca === undefined ? {} : { ca }) },
      i + 1,
    ),
  );
  let result: CeremonyResult;
  try {
    result = await runCeremony(members, {
      guessLimit,
      namespace,
      epoch,
      logKey,
      releaseKey,
      maxSuccessorGuessLimit,
      witnessPolicy,
    });
  } catch (e) {
    if (isBkvError(e)) {
      process.stderr.write(`bkv fleet create: ${e.code}: ${e.message}\n`);
      return e.code === ErrorCode.Unavailable ? 5 : 1;
    }
    throw e;
  }
  mkdirSync(out, { recursive: true, mode: 0o700 });
  writeFileSync(join(out, "evidence.bin"), result.evidence);
  writeFileSync(join(out, "ceremony-log.json"), `${JSON.stringify(result.ceremonyLog, null, 2)}\n`);
  writeFileSync(join(out, "fleet.json"), `${JSON.stringify({ ...result.fleet, hosts: urls }, null, 2)}\n`);
  process.stdout.write(
    `${JSON.stringify({ fleetId: result.fleet.fleetId, namespace, epoch, measurement: result.fleet.measurement, members: urls.length, evidence: join(out, "evidence.bin") })}\n`,
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
