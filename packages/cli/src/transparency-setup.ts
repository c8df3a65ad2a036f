/**
 * The local fleet's transparency services (`bkv dev`): a log and two witnesses, each its own
 * process with its own keys and folder, standing for independent third parties. The operator then
 * publishes the fleet: it submits the fleet artifact with its evidence to the log, and the hosts
 * hand out the resulting validation bundle, counter-signed by their HSMs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  formatVerifierKey,
  generateSignerKey,
  parseSignerKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  toBase64,
  verifierKeyOf,
} from "@bkv/tlog";
import {
  artifactFromStatement,
  BkvError,
  decodeEvidence,
  decodeStatement,
  ErrorCode,
  encodeArtifact,
  toHex,
} from "@bkv/wire";
import { devPaths } from "./dev-files.js";
import { spawnService } from "./services.js";

/** What a client of this deployment pins, and where the log is (DIR/transparency.json). */
export interface TransparencyInfo {
  log: string;
  logKey: string;
  witnessKeys: string[];
  witnessThreshold: number;
  namespace: string;
  /** The fleet's epoch in the namespace. */
  epoch: number;
}

export const WITNESSES = 2;
const LOG_ORIGIN = "localhost/bkv-dev/log";
const witnessName = (i: number) => `localhost/bkv-dev/witness-${i}`;
/** How long a published fleet artifact is valid. */
const VALIDITY_MS = 365 * 24 * 3600 * 1000;

function mainOf(pkg: string): string {
  return createRequire(import.meta.url).resolve(pkg);
}

/** The service's key file, made here on first use so its verifier key is known before it starts. */
function verifierKey(dir: string, file: string, name: string, type: number): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, file);
  if (!existsSync(path)) writeFileSync(path, `${generateSignerKey(name, type).skey}\n`, { mode: 0o600 });
  return formatVerifierKey(verifierKeyOf(parseSignerKey(readFileSync(path, "utf8").trim())));
}

export interface RunningTransparency {
  info: TransparencyInfo;
  pids: number[];
}

/** Start the witnesses and the log (ports: log, then one per witness; 0 for free ports). */
export async function startTransparency(
  dir: string,
  ports: number[],
  namespace: string,
): Promise<RunningTransparency> {
  const p = devPaths(dir);
  const logDir = join(p.dir, "log");
  const logKey = verifierKey(logDir, "log.key", LOG_ORIGIN, SIG_ED25519);
  const pids: number[] = [];
  const witnesses: { url: string; key: string }[] = [];
  for (let i = 1; i <= WITNESSES; i++) {
    const wDir = join(p.dir, `witness-${i}`);
    const key = verifierKey(wDir, "witness.key", witnessName(i), SIG_COSIGNATURE_V1);
    const s = await spawnService(
      [
        process.execPath,
        mainOf("@bkv/log/witness-main"),
        "--dir",
        wDir,
        "--listen",
        `127.0.0.1:${ports[i] ?? 0}`,
        "--name",
        witnessName(i),
        "--log",
        `${LOG_ORIGIN}=${logKey}`,
      ],
      wDir,
      "witness",
    );
    pids.push(s.pid);
    witnesses.push({ url: String(s.ready.url), key });
  }
  const s = await spawnService(
    [
      process.execPath,
      mainOf("@bkv/log/log-main"),
      "--dir",
      logDir,
      "--listen",
      `127.0.0.1:${ports[0] ?? 0}`,
      "--origin",
      LOG_ORIGIN,
      ...witnesses.flatMap((w) => ["--witness", `${w.url}=${w.key}`]),
      "--witness-threshold",
      String(WITNESSES),
    ],
    logDir,
    "log",
  );
  pids.push(s.pid);
  return {
    info: {
      log: String(s.ready.url),
      logKey,
      witnessKeys: witnesses.map((w) => w.key),
      witnessThreshold: WITNESSES,
      namespace,
      epoch: 1,
    },
    pids,
  };
}

/** Submit the fleet's artifact and evidence to the log (the same artifact again is a no-op). */
export async function publishFleet(dir: string, info: TransparencyInfo): Promise<{ index: number }> {
  const p = devPaths(dir);
  const evidence = new Uint8Array(readFileSync(p.evidence));
  const st = decodeStatement(decodeEvidence(evidence).statement);
  const artifactPath = join(p.dir, "artifact.bin");
  // The artifact is made once: its validity window must not move between runs.
  if (!existsSync(artifactPath)) {
    // The namespace and epoch are the statement's: genesis froze them (and the log key).
    if (st.namespace !== info.namespace || st.epoch !== info.epoch) {
      throw new BkvError(
        ErrorCode.Invalid,
        `the fleet is frozen to namespace ${st.namespace} epoch ${st.epoch}, not ${info.namespace} epoch ${info.epoch}`,
      );
    }
    const artifact = artifactFromStatement(st, {
      notBefore: st.time - 5 * 60 * 1000,
      notAfter: st.time + VALIDITY_MS,
    });
    writeFileSync(artifactPath, encodeArtifact(artifact));
  }
  const artifact = new Uint8Array(readFileSync(artifactPath));
  const res = await fetch(`${info.log}/add`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      namespace: info.namespace,
      epoch: info.epoch,
      artifact: toBase64(artifact),
      evidence: toBase64(evidence),
    }),
    signal: AbortSignal.timeout(15_000),
  });
  if (!res.ok) {
    throw new BkvError(ErrorCode.Unavailable, `the log refused the fleet: ${res.status} ${await res.text()}`);
  }
  return { index: ((await res.json()) as { index: number }).index };
}

export function writeTransparencyInfo(dir: string, info: TransparencyInfo): void {
  writeFileSync(join(devPaths(dir).dir, "transparency.json"), `${JSON.stringify(info, null, 2)}\n`);
}

/** The log's transparency page, with what to pin in the URL fragment (never sent to the server). */
export function transparencyUrl(
  info: TransparencyInfo,
  vendorRoot?: Uint8Array,
  dev: { testRoot?: boolean; smallFleet?: boolean } = {},
): string {
  const p = new URLSearchParams();
  p.set("logKey", info.logKey);
  for (const k of info.witnessKeys) p.append("witnessKey", k);
  p.set("threshold", String(info.witnessThreshold));
  if (vendorRoot !== undefined) p.set("vendorRoot", toHex(vendorRoot));
  // Development only: the vendor root is a test root (allowed), fleets under 3 HSMs are allowed.
  if (dev.testRoot === true) p.set("testRoot", "1");
  if (dev.smallFleet === true) p.set("allowSmallFleet", "1");
  return `${info.log}/transparency/#${p.toString()}`;
}
