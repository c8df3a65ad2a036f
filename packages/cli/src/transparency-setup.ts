/**
 * The local fleet's transparency services (`bkv dev`): a log and two witnesses, each its own
 * process with its own keys and folder, standing for independent third parties. The operator then
 * publishes the fleet: it submits the fleet artifact with its evidence to the log, and the hosts
 * hand out the resulting validation bundle, counter-signed by their HSMs.
 *
 * The log hosts the deployment's namespace only, registered with the operator's submitter key
 * (DIR/submitter.key, an Ed25519 seed made here, mode 0600), and appends a fleet only if its
 * evidence verifies against the folder's vendor root (DIR/vendor-root.pub) and the measurement of
 * the core this checkout built (build/hsm-core.js), with a guess limit of at most the log's maximum.
 *
 * It also hosts the releases namespace `<namespace>-releases`, registered with the same submitter
 * key and the folder's release key (DIR/release.key, made here once, mode 0600): `bkv dev`
 * publishes its build's measurement there (publishDevRelease), and the trust.json it writes pins
 * that release key instead of the measurement.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { readVendorRootPub } from "@bkv/hsm-software";
import {
  artifactDigest,
  evidenceDigest,
  formatVerifierKey,
  generateSignerKey,
  parseSignerKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  submitMessage,
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
  fromHex,
  toHex,
} from "@bkv/wire";
import { version as esbuildVersion } from "esbuild";
import { nextEpoch, publishRelease } from "./commands/release.js";
import { devPaths } from "./dev-files.js";
import { ensureVendorRoot } from "./fleet-setup.js";
import { MEASURED_CORE_FILE, measurementOf, OWN_SOURCE_ROOT } from "./measure.js";
import { spawnService } from "./services.js";
import { type SigningKey, signingKeyFile } from "./signing-key-file.js";

/** What a client of this deployment pins, and where the log is (DIR/transparency.json). */
export interface TransparencyInfo {
  log: string;
  logKey: string;
  witnessKeys: string[];
  witnessThreshold: number;
  namespace: string;
  /** The fleet's epoch in the namespace. */
  epoch: number;
  /** The releases namespace and its release key (raw Ed25519, hex). */
  releases?: { namespace: string; key: string };
}

/** The releases namespace `bkv dev` registers next to the deployment's. */
export const releasesNamespace = (namespace: string) => `${namespace}-releases`;

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

/** The operator's submitter key for the namespace (DIR/submitter.key, mode 0600), made on first use. */
function submitterKey(dir: string): SigningKey {
  return signingKeyFile(
    join(devPaths(dir).dir, "submitter.key"),
    "bkv dev submitter key: Ed25519 seed, hex. It signs this deployment's /add calls to its log.",
  );
}

/** The folder's release key (DIR/release.key, mode 0600), made on first use. */
function releaseKey(dir: string): SigningKey {
  return signingKeyFile(
    join(devPaths(dir).dir, "release.key"),
    "bkv dev release key: Ed25519 seed, hex. It signs this folder's release entries; trust.json pins its public key.",
  );
}

/**
 * Publish the build's measurement in the releases namespace, signed by the release key, unless the
 * log has a release of it already. Source revision: `git rev-parse HEAD` of this checkout, else
 * "unknown"; recipe: the build commands and the esbuild version.
 */
export async function publishDevRelease(
  dir: string,
  info: TransparencyInfo,
  measurement: string,
): Promise<void> {
  const r = info.releases;
  if (r === undefined) throw new BkvError(ErrorCode.Invalid, "this log has no releases namespace");
  const have = await fetch(
    `${info.log}/release/${measurement}?namespace=${encodeURIComponent(r.namespace)}`,
    {
      signal: AbortSignal.timeout(15_000),
    },
  );
  if (have.ok) return;
  if (have.status !== 404)
    throw new BkvError(ErrorCode.Unavailable, `the log answered ${have.status} for the release`);
  let sourceRevision = "unknown";
  try {
    sourceRevision = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: OWN_SOURCE_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    // not a git checkout: "unknown"
  }
  const res = await publishRelease({
    log: info.log,
    releaseKey: releaseKey(dir),
    submitter: submitterKey(dir),
    release: {
      namespace: r.namespace,
      epoch: await nextEpoch(info.log, r.namespace),
      measurement: fromHex(measurement),
      sourceRevision,
      buildRecipe: `npm ci && npm run build (esbuild ${esbuildVersion}); build/hsm-core.js is the core, \`bkv measure\` prints its SHA-256`,
      time: Date.now(),
    },
  });
  if (!res.ok)
    throw new BkvError(
      ErrorCode.Unavailable,
      `the log refused the release (${res.status}): ${await res.text()}`,
    );
}

/**
 * The log's evidence policy flags: the folder's vendor root (made here if the folder is new: the
 * log starts before genesis) and the built core's measurement.
 */
function evidenceFlags(dir: string): string[] {
  const p = devPaths(dir);
  ensureVendorRoot(dir);
  const flags = ["--vendor-root", toHex(readVendorRootPub(p.vendorRootPub))];
  if (existsSync(MEASURED_CORE_FILE))
    flags.push("--measurement", measurementOf(new Uint8Array(readFileSync(MEASURED_CORE_FILE))));
  return flags;
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
      "--namespace",
      `${namespace}=${toHex(submitterKey(dir).publicKey)}`,
      "--namespace",
      `${releasesNamespace(namespace)}=${toHex(submitterKey(dir).publicKey)}`,
      "--release-key",
      `${releasesNamespace(namespace)}=${toHex(releaseKey(dir).publicKey)}`,
      ...evidenceFlags(dir),
      // `bkv dev --nodes 1` is a development fleet; clients still apply their own pinned policy.
      "--allow-small-fleet",
      "yes",
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
      releases: { namespace: releasesNamespace(namespace), key: toHex(releaseKey(dir).publicKey) },
    },
    pids,
  };
}

/**
 * Submit the fleet's artifact and evidence to the log, signed with the submitter key (the same
 * artifact and evidence again is a no-op).
 */
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
  const signature = submitterKey(dir).sign(
    submitMessage(info.namespace, info.epoch, artifactDigest(artifact), evidenceDigest(evidence)),
  );
  const res = await fetch(`${info.log}/add`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      namespace: info.namespace,
      epoch: info.epoch,
      artifact: toBase64(artifact),
      evidence: toBase64(evidence),
      submitterSignature: toBase64(signature),
    }),
    signal: AbortSignal.timeout(15_000),
  });
  if (!res.ok) {
    // The log's refusals are typed: SUBMITTER_SIGNATURE, FORBIDDEN, INVALID, BUNDLE_EVIDENCE, ...
    const text = await res.text();
    let code: ErrorCode = ErrorCode.Unavailable;
    let message = text;
    try {
      const j = JSON.parse(text) as { code?: unknown; message?: unknown };
      if ((Object.values(ErrorCode) as unknown[]).includes(j.code)) code = j.code as ErrorCode;
      if (typeof j.message === "string") message = j.message;
    } catch {
      // not JSON: keep the text
    }
    throw new BkvError(code, `the log refused the fleet (${res.status}): ${message}`);
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
  if (info.releases !== undefined) p.set("releaseKey", info.releases.key);
  // Development only: the vendor root is a test root (allowed), fleets under 3 HSMs are allowed.
  if (dev.testRoot === true) p.set("testRoot", "1");
  if (dev.smallFleet === true) p.set("allowSmallFleet", "1");
  return `${info.log}/transparency/#${p.toString()}`;
}
