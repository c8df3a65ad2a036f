/**
 * `bkv monitor` flags → MonitorConfig. Either --dev DIR (DIR/transparency.json, DIR/vendor-root.pub,
 * DIR/monitor-state.json) or --log URL --log-key VKEY --witness-key VKEY... [--witness-threshold N].
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fromHex } from "@bkv/wire";
import { UsageError } from "../args.js";
import { devPaths, readTrust } from "../dev-files.js";
import { pinVendorRootFile } from "../vendor-root-file.js";
import {
  checkPolicy,
  DEFAULT_INTERVAL_SECONDS,
  DEFAULT_MAX_GUESS_LIMIT,
  type MonitorConfig,
  normalizeLogUrl,
  readTransparencyConfig,
  STATE_FILE,
  VENDOR_ROOT_FILE,
} from "./config.js";

export interface MonitorFlags {
  readonly config: MonitorConfig;
  readonly follow: boolean;
  readonly intervalMs: number;
  readonly json: boolean;
}

const OPTIONS = {
  dev: { type: "string" },
  log: { type: "string" },
  "log-key": { type: "string" },
  "witness-key": { type: "string", multiple: true },
  "witness-threshold": { type: "string" },
  "vendor-root": { type: "string" },
  "release-key": { type: "string" },
  state: { type: "string" },
  follow: { type: "boolean" },
  interval: { type: "string" },
  "max-guess-limit": { type: "string" },
  "allow-test-roots": { type: "boolean" },
  "allow-small-fleet": { type: "boolean" },
  json: { type: "boolean" },
} as const;

function wholeNumber(v: string, flag: string, min: number): number {
  if (!/^[0-9]+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v)))
    throw new UsageError(`${flag} must be a whole number of at least ${min}`);
  return Number(v);
}

export function parseMonitorFlags(argv: string[]): MonitorFlags {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
    values = parsed.values;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const maxGuessLimit =
    values["max-guess-limit"] === undefined
      ? DEFAULT_MAX_GUESS_LIMIT
      : wholeNumber(values["max-guess-limit"], "--max-guess-limit", 1);
  let intervalMs = DEFAULT_INTERVAL_SECONDS * 1000;
  if (values.interval !== undefined) {
    if (values.follow !== true) throw new UsageError("--interval goes with --follow");
    const s = Number(values.interval);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(values.interval) || !(s > 0) || s > 86_400)
      throw new UsageError("--interval must be a number of seconds above 0");
    intervalMs = Math.round(s * 1000);
  }
  const vendorRootFile = values["vendor-root"];
  let releaseKey: Uint8Array | undefined;
  if (values["release-key"] !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(values["release-key"]))
      throw new UsageError(
        "--release-key: the release key's raw Ed25519 public key, 64 lowercase hex digits",
      );
    releaseKey = fromHex(values["release-key"]);
  }

  let config: MonitorConfig;
  if (values.dev !== undefined) {
    for (const f of ["log", "log-key", "witness-key", "witness-threshold"] as const) {
      if (values[f] !== undefined)
        throw new UsageError(`--${f} comes from the --dev folder; give one or the other`);
    }
    const dir = values.dev;
    const t = readTransparencyConfig(dir);
    const rootFile = vendorRootFile ?? join(dir, VENDOR_ROOT_FILE);
    const trustFile = devPaths(dir).trustJson;
    const devPins = existsSync(trustFile) ? readTrust(trustFile) : null;
    config = {
      logUrl: t.log,
      policy: { logKey: t.logKey, witnessKeys: t.witnessKeys, threshold: t.witnessThreshold },
      vendorRoots:
        vendorRootFile === undefined && !existsSync(rootFile) ? null : [pinVendorRootFile(rootFile, false)],
      // A dev folder's own pins say whether its test root and its fleet size are allowed.
      // The folder's own root is its test root: a dev folder is development.
      allowTestRoots:
        values["allow-test-roots"] === true ||
        devPins?.allowTestRoots === true ||
        vendorRootFile === undefined,
      allowSmallFleet: values["allow-small-fleet"] === true || devPins?.allowSmallFleet === true,
      statePath: values.state ?? join(dir, STATE_FILE),
      maxGuessLimit,
      namespace: t.namespace,
      // A dev folder's clients pin its release key: its releases are checked against it.
      ...(releaseKey !== undefined
        ? { releaseKey }
        : devPins?.release !== undefined
          ? { releaseKey: fromHex(devPins.release.key) }
          : {}),
    };
  } else {
    if (values.log === undefined)
      throw new UsageError("give --dev DIR, or --log URL with --log-key and --witness-key");
    if (values["log-key"] === undefined) throw new UsageError("--log-key is required with --log");
    const witnessKeys = values["witness-key"] ?? [];
    if (witnessKeys.length === 0)
      throw new UsageError("--witness-key is required with --log (repeat it per witness)");
    const threshold =
      values["witness-threshold"] === undefined
        ? witnessKeys.length
        : wholeNumber(values["witness-threshold"], "--witness-threshold", 1);
    if (threshold > witnessKeys.length)
      throw new UsageError(
        `--witness-threshold ${threshold} is more than the ${witnessKeys.length} witness key(s) given`,
      );
    config = {
      logUrl: normalizeLogUrl(values.log),
      policy: checkPolicy({ logKey: values["log-key"], witnessKeys, threshold }),
      vendorRoots: vendorRootFile === undefined ? null : [pinVendorRootFile(vendorRootFile, false)],
      allowTestRoots: values["allow-test-roots"] === true,
      allowSmallFleet: values["allow-small-fleet"] === true,
      statePath: values.state ?? null,
      maxGuessLimit,
      ...(releaseKey === undefined ? {} : { releaseKey }),
    };
  }
  return { config, follow: values.follow === true, intervalMs, json: values.json === true };
}
