/**
 * Helpers for the `bkv monitor` tests: the real log and witness processes (packages/log/dist) on
 * 127.0.0.1 ephemeral ports with keys written beforehand (so a second log can be started on a fresh
 * folder with the same key), fleet artifacts and evidence from real in-memory genesis ceremonies,
 * and appends through the log's HTTP API.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SimFleet } from "@bkv/sim";
import { generateSignerKey, SIG_COSIGNATURE_V1, SIG_ED25519 } from "@bkv/tlog";
import {
  artifactFromStatement,
  decodeEvidence,
  decodeStatement,
  encodeArtifact,
  type GenesisStatement,
} from "@bkv/wire";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const LOG_DIST = join(ROOT, "packages/log/dist");
export const BKV = join(ROOT, "packages/cli/bin/bkv.js");

const running = new Set<ChildProcess>();

/** Kill whatever a test left running. */
export function killAll(): void {
  for (const p of running) p.kill("SIGKILL");
  running.clear();
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build a package (tsc -b) if its dist file is missing or older than its sources. */
export function ensureBuilt(pkg: string, distFile: string, srcDir = "src"): void {
  const built = join(ROOT, "packages", pkg, "dist", distFile);
  const src = join(ROOT, "packages", pkg, srcDir);
  if (!existsSync(built) || statSync(built).mtimeMs < newestMtime(src)) {
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-b", `packages/${pkg}`], {
      cwd: ROOT,
      stdio: "pipe",
    });
  }
}

interface Ready {
  ready: true;
  url: string;
  logKey?: string;
  witnessKey?: string;
}

function start(script: string, args: string[]): Promise<{ proc: ChildProcess; ready: Ready }> {
  const proc = spawn(process.execPath, [join(LOG_DIST, script), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  proc.on("exit", () => running.delete(proc));
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve({ proc, ready: JSON.parse(out.slice(0, nl)) as Ready });
    });
    proc.on("exit", (code) => reject(new Error(`${script} exited with ${code} before it was ready: ${err}`)));
  });
}

export function stop(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });
}

/** A log's and a witness's signer keys (C2SP), made once and reusable for a forked log. */
export interface LogKeys {
  readonly origin: string;
  readonly logSkey: string;
  readonly logKey: string;
  readonly witnessName: string;
  readonly witnessSkey: string;
  readonly witnessKey: string;
}

export function newLogKeys(origin = "log.example/monitor-test", witnessName = "witness.example/w1"): LogKeys {
  const log = generateSignerKey(origin, SIG_ED25519);
  const w = generateSignerKey(witnessName, SIG_COSIGNATURE_V1);
  return {
    origin,
    logSkey: log.skey,
    logKey: log.vkey,
    witnessName,
    witnessSkey: w.skey,
    witnessKey: w.vkey,
  };
}

/** A cosignature/v1 verifier key of a witness that exists nowhere. */
export function strayWitnessKey(name = "witness.example/absent"): string {
  return generateSignerKey(name, SIG_COSIGNATURE_V1).vkey;
}

export interface RunningLog {
  readonly url: string;
  readonly keys: LogKeys;
  stop(): Promise<void>;
}

/** A witness and a log (threshold 1) in `dir`, with the given keys written to their folders first. */
export async function startLog(dir: string, keys: LogKeys): Promise<RunningLog> {
  const logDir = join(dir, "log");
  const witnessDir = join(dir, "witness");
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  mkdirSync(witnessDir, { recursive: true, mode: 0o700 });
  if (!existsSync(join(logDir, "log.key")))
    writeFileSync(join(logDir, "log.key"), `${keys.logSkey}\n`, { mode: 0o600 });
  if (!existsSync(join(witnessDir, "witness.key")))
    writeFileSync(join(witnessDir, "witness.key"), `${keys.witnessSkey}\n`, { mode: 0o600 });
  const witness = await start("witness-main.js", [
    "--dir",
    witnessDir,
    "--listen",
    "127.0.0.1:0",
    "--name",
    keys.witnessName,
    "--log",
    `${keys.origin}=${keys.logKey}`,
  ]);
  const log = await start("log-main.js", [
    "--dir",
    logDir,
    "--listen",
    "127.0.0.1:0",
    "--origin",
    keys.origin,
    "--witness",
    `${witness.ready.url}=${keys.witnessKey}`,
    "--witness-threshold",
    "1",
  ]);
  if (log.ready.logKey !== keys.logKey) throw new Error("the log did not load the key written for it");
  return {
    url: log.ready.url,
    keys,
    stop: async () => {
      await stop(log.proc);
      await stop(witness.proc);
    },
  };
}

/** A fleet's evidence and genesis statement from a real in-memory genesis ceremony. */
export interface TestFleet {
  readonly evidence: Uint8Array;
  readonly statement: GenesisStatement;
}

export async function makeFleet(seed: number, guessLimit: number): Promise<TestFleet> {
  const f = await SimFleet.create({ nodes: 3, seed, guessLimit });
  return { evidence: f.evidence, statement: decodeStatement(decodeEvidence(f.evidence).statement) };
}

const DAY = 86_400_000;
export const NOT_BEFORE = Date.UTC(2025, 0, 1);

export function artifactOf(f: TestFleet, namespace: string, epoch: number): Uint8Array {
  return encodeArtifact({
    // The statement's own namespace and epoch (genesis froze them), replaced by what this test logs.
    ...artifactFromStatement(f.statement, { notBefore: NOT_BEFORE, notAfter: NOT_BEFORE + 365 * DAY }),
    namespace,
    epoch,
  });
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");

/** POST /add; the log answers once its witness cosigned. */
export async function addEntry(
  url: string,
  namespace: string,
  epoch: number,
  artifact: Uint8Array,
  evidence: Uint8Array,
): Promise<{ index: number }> {
  const res = await fetch(`${url}/add`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ namespace, epoch, artifact: b64(artifact), evidence: b64(evidence) }),
  });
  const body = (await res.json()) as { index: number; error?: string };
  if (res.status !== 200) throw new Error(`POST /add: ${res.status} ${body.error}`);
  return body;
}

/** Log fleet f as (namespace, epoch), with its own evidence unless told otherwise. */
export function addFleet(
  url: string,
  namespace: string,
  epoch: number,
  f: TestFleet,
  evidence: Uint8Array = f.evidence,
): Promise<{ index: number }> {
  return addEntry(url, namespace, epoch, artifactOf(f, namespace, epoch), evidence);
}
