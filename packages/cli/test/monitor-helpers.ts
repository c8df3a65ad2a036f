/**
 * Helpers for the `bkv monitor` tests: the real log and witness processes (packages/log/dist) on
 * 127.0.0.1 ephemeral ports with keys written beforehand (so a second log can be started on a fresh
 * folder with the same key), fleet artifacts and evidence from real in-memory genesis ceremonies
 * frozen to the log they are appended to, appends through the log's HTTP API signed by the
 * namespace's submitter, and a dishonest log's append that bypasses the log's checks.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_VENDOR } from "@bkv/hsm-software";
import { LogStore } from "@bkv/log";
import { SimFleet } from "@bkv/sim";
import {
  artifactDigest,
  bundleSignedMessage,
  encodeLogEntry,
  evidenceDigest,
  generateSignerKey,
  leafHash,
  parseSignerKey,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  submitMessage,
} from "@bkv/tlog";
import {
  type Attestation,
  artifactFromStatement,
  attestationSignedBytes,
  decodeEvidence,
  decodeStatement,
  encodeArtifact,
  encodeEvidence,
  encodeStatement,
  type GenesisStatement,
  quorumOf,
  toHex,
  type WitnessPolicy,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";

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

/** The witness policy a test log's fleets freeze: its one witness, threshold 1 (what the monitor pins). */
export function frozenWitnessPolicy(keys: LogKeys): WitnessPolicy {
  const v = parseVerifierKey(keys.witnessKey);
  return { witnesses: [{ name: v.name, key: v.publicKey }], threshold: 1 };
}

/** A cosignature/v1 verifier key of a witness that exists nowhere. */
export function strayWitnessKey(name = "witness.example/absent"): string {
  return generateSignerKey(name, SIG_COSIGNATURE_V1).vkey;
}

export interface RunningLog {
  readonly url: string;
  readonly keys: LogKeys;
  stop(): Promise<void>;
  /**
   * A dishonest log operator: append an entry without the log's checks (straight into its
   * database while it is stopped), then restart the log on the same port; it publishes the entry.
   */
  appendUnchecked(
    namespace: string,
    epoch: number,
    artifact: Uint8Array,
    evidence: Uint8Array,
    /** The epoch of the database row, when the operator files the entry under another one to get
     * past the database's one-entry-per-epoch constraint (the published entry keeps `epoch`). */
    rowEpoch?: number,
  ): Promise<void>;
}

/** The submitter key of every test log's namespaces: it signs each /add (addEntry). */
const SUBMITTER_SEED = new Uint8Array(randomBytes(32));
/** The keys of the log listening at each URL (fleets freeze their log's key at genesis). */
const keysByUrl = new Map<string, LogKeys>();

/**
 * A witness and a log (threshold 1) in `dir`, with the given keys written to their folders first.
 * The log hosts `namespaces` (submitter: SUBMITTER_SEED's key) and checks evidence against TEST_VENDOR.
 */
export async function startLog(
  dir: string,
  keys: LogKeys,
  namespaces = ["demo"],
  extraArgs: string[] = [],
): Promise<RunningLog> {
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
  const logArgs = (port: number) => [
    "--dir",
    logDir,
    "--listen",
    `127.0.0.1:${port}`,
    "--origin",
    keys.origin,
    "--witness",
    `${witness.ready.url}=${keys.witnessKey}`,
    "--witness-threshold",
    "1",
    ...namespaces.flatMap((n) => ["--namespace", `${n}=${toHex(ed25519.getPublicKey(SUBMITTER_SEED))}`]),
    "--vendor-root",
    toHex(TEST_VENDOR.publicKey),
    ...extraArgs,
  ];
  let log = await start("log-main.js", logArgs(0));
  if (log.ready.logKey !== keys.logKey) throw new Error("the log did not load the key written for it");
  const url = log.ready.url;
  keysByUrl.set(url, keys);
  return {
    url,
    keys,
    stop: async () => {
      await stop(log.proc);
      await stop(witness.proc);
    },
    appendUnchecked: async (namespace, epoch, artifact, evidence, rowEpoch = epoch) => {
      await stop(log.proc);
      const store = new LogStore(join(logDir, "log.sqlite"));
      const index = store.count();
      try {
        const digest = evidenceDigest(evidence);
        const entry = encodeLogEntry({ namespace, epoch, artifact, evidenceDigest: digest });
        const logSignature = ed25519.sign(
          bundleSignedMessage(namespace, epoch, artifactDigest(artifact)),
          parseSignerKey(keys.logSkey).seed,
        );
        store.append(
          { index, namespace, epoch: rowEpoch, artifact, evidenceDigest: digest, entry, logSignature },
          leafHash(entry),
          evidence,
        );
      } finally {
        store.close();
      }
      log = await start("log-main.js", logArgs(Number(new URL(url).port)));
      // The log publishes entries it holds unpublished as it starts; wait for that checkpoint.
      const size = async () => {
        const r = await fetch(`${url}/checkpoint`);
        return r.ok ? Number((await r.text()).split("\n")[1]) : 0;
      };
      for (let i = 0; i < 200 && (await size()) <= index; i++) await new Promise((r) => setTimeout(r, 50));
      if ((await size()) <= index) throw new Error("the restarted log did not publish the entry");
    },
  };
}

/** How to make a fleet: the seed of its in-memory genesis ceremony and its guess limit. */
export interface TestFleet {
  readonly seed: number;
  readonly guessLimit: number;
}

/** A fleet's evidence and genesis statement from a real in-memory genesis ceremony. */
export interface LoggedFleet {
  readonly evidence: Uint8Array;
  readonly statement: GenesisStatement;
}

export async function makeFleet(seed: number, guessLimit: number): Promise<TestFleet> {
  return { seed, guessLimit };
}

const made = new Map<string, Promise<LoggedFleet>>();

/**
 * Fleet f as made for (namespace, epoch) of the log at `url`: genesis froze that namespace, epoch
 * and log key, as the log requires. Made once per (log key, namespace, epoch, fleet).
 */
/** The release key the test fleets freeze at genesis (its seed, and its public key in hex). */
export const FROZEN_RELEASE_SEED = new Uint8Array(32).fill(0x52);
export const FROZEN_RELEASE_HEX = Buffer.from(ed25519.getPublicKey(FROZEN_RELEASE_SEED)).toString("hex");

export function fleetFor(url: string, namespace: string, epoch: number, f: TestFleet): Promise<LoggedFleet> {
  const keys = keysByUrl.get(url);
  if (keys === undefined) throw new Error(`no test log at ${url}`);
  const k = `${keys.logKey} ${namespace} ${epoch} ${f.seed} ${f.guessLimit}`;
  if (!made.has(k)) {
    made.set(
      k,
      SimFleet.create({
        nodes: 3,
        seed: f.seed,
        guessLimit: f.guessLimit,
        namespace,
        epoch,
        logSeed: parseSignerKey(keys.logSkey).seed,
        releaseSeed: FROZEN_RELEASE_SEED,
        witnessPolicy: frozenWitnessPolicy(keys),
      }).then((s) => ({
        evidence: s.evidence,
        statement: decodeStatement(decodeEvidence(s.evidence).statement),
      })),
    );
  }
  return made.get(k)!;
}

const DAY = 86_400_000;
export const NOT_BEFORE = Date.UTC(2025, 0, 1);

/** A logged fleet's artifact (its namespace and epoch are its statement's). */
export function artifactOf(f: LoggedFleet): Uint8Array {
  return encodeArtifact(
    artifactFromStatement(f.statement, { notBefore: NOT_BEFORE, notAfter: NOT_BEFORE + 365 * DAY }),
  );
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");

/** POST /add signed by the namespace's submitter; the log answers once its witness cosigned. */
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
    body: JSON.stringify({
      namespace,
      epoch,
      artifact: b64(artifact),
      evidence: b64(evidence),
      submitterSignature: b64(
        ed25519.sign(
          submitMessage(namespace, epoch, artifactDigest(artifact), evidenceDigest(evidence)),
          SUBMITTER_SEED,
        ),
      ),
    }),
  });
  const body = (await res.json()) as { index: number; code?: string; message?: string };
  if (res.status !== 200) throw new Error(`POST /add: ${res.status} ${body.code}: ${body.message}`);
  return body;
}

/** Log fleet f as (namespace, epoch) of the log at `url`, made for it. */
export async function addFleet(
  url: string,
  namespace: string,
  epoch: number,
  f: TestFleet,
): Promise<{ index: number }> {
  const logged = await fleetFor(url, namespace, epoch, f);
  return addEntry(url, namespace, epoch, artifactOf(logged), logged.evidence);
}

/** HSM identities whose keys the test holds: an attestation by TEST_VENDOR and the signing seed. */
export interface HeldMember {
  readonly signSeed: Uint8Array;
  readonly attestation: Attestation;
}

const HELD_MEASUREMENT = new Uint8Array(randomBytes(32));

export function heldMembers(n = 3): HeldMember[] {
  return Array.from({ length: n }, () => {
    const signSeed = new Uint8Array(randomBytes(32));
    const body = {
      platform: "software",
      vendor: "test vendor (monitor tests)",
      signKey: ed25519.getPublicKey(signSeed),
      agreeKey: p256.getPublicKey(p256.utils.randomSecretKey(), false),
      measurement: HELD_MEASUREMENT,
      properties: ["test"],
    };
    return {
      signSeed,
      attestation: { ...body, signature: ed25519.sign(attestationSignedBytes(body), TEST_VENDOR.seed) },
    };
  });
}

/**
 * A genesis of these members for (namespace, epoch) of the log at `url`, each member signing the
 * statement: what the same HSMs produce if their NVRAM is rolled back (or they are cloned) and
 * they join another fleet.
 */
export function heldFleetFor(
  url: string,
  namespace: string,
  epoch: number,
  members: HeldMember[],
): LoggedFleet {
  const keys = keysByUrl.get(url);
  if (keys === undefined) throw new Error(`no test log at ${url}`);
  const statement: GenesisStatement = {
    fleetId: new Uint8Array(randomBytes(16)),
    namespace,
    epoch,
    logKey: ed25519.getPublicKey(parseSignerKey(keys.logSkey).seed),
    releaseKey: ed25519.getPublicKey(FROZEN_RELEASE_SEED),
    members: members.map((m) => m.attestation),
    challenges: members.map(() => new Uint8Array(randomBytes(32))),
    measurement: HELD_MEASUREMENT,
    policy: { guessLimit: 5, n: members.length, quorum: quorumOf(members.length) },
    maxSuccessorGuessLimit: 5,
    witnessPolicy: frozenWitnessPolicy(keys),
    vaultPublicKey: new Uint8Array(randomBytes(32)),
    fleetSigningKey: ed25519.getPublicKey(new Uint8Array(randomBytes(32))),
    time: NOT_BEFORE,
  };
  const bytes = encodeStatement(statement);
  const evidence = encodeEvidence({
    statement: bytes,
    signatures: members.map((m) => ed25519.sign(bytes, m.signSeed)),
  });
  return { evidence, statement };
}
