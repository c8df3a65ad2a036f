/**
 * What the monitor trusts and where it looks: the log's URL, the pinned log key, the witness keys
 * with their threshold (a tlog TrustPolicy), the vendor roots attestations are checked against,
 * the state file and the guess limit it accepts. `bkv dev` writes the transparency part to
 * DIR/transparency.json; readTransparencyConfig reads and checks that file.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PinnedVendorRoot } from "@bkv/client";
import {
  parseVerifierKey,
  repeatedWitnessKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  type TrustPolicy,
} from "@bkv/tlog";
import { BkvError, bytesEqual, ErrorCode } from "@bkv/wire";

export const TRANSPARENCY_FILE = "transparency.json";
export const VENDOR_ROOT_FILE = "vendor-root.pub";
export const STATE_FILE = "monitor-state.json";
export const DEFAULT_MAX_GUESS_LIMIT = 10;
export const DEFAULT_INTERVAL_SECONDS = 5;

/** DIR/transparency.json, as `bkv dev` writes it. */
export interface TransparencyConfig {
  /** The log's base URL, e.g. http://127.0.0.1:4100. */
  readonly log: string;
  /** The log's C2SP Ed25519 verifier key. */
  readonly logKey: string;
  /** cosignature/v1 verifier keys of the witnesses. */
  readonly witnessKeys: readonly string[];
  readonly witnessThreshold: number;
  /** The deployment's namespace (what clients pin); the monitor reports every namespace. */
  readonly namespace: string;
}

export interface MonitorConfig {
  readonly logUrl: string;
  readonly policy: TrustPolicy;
  /** Pinned vendor roots; null: attestations are not checked against a vendor root. */
  readonly vendorRoots: readonly PinnedVendorRoot[] | null;
  /** Development: test vendor roots count, and fleets under 3 members pass. */
  readonly allowTestRoots?: boolean;
  readonly allowSmallFleet?: boolean;
  /** Where the last fully verified checkpoint is kept; null: nowhere. */
  readonly statePath: string | null;
  readonly maxGuessLimit: number;
  /** Raw Ed25519 release key release entries are checked against; absent: reported unchecked. */
  readonly releaseKey?: Uint8Array;
  /** The namespace a --dev deployment's clients pin, if known (informational). */
  readonly namespace?: string;
}

function invalid(message: string): BkvError {
  return new BkvError(ErrorCode.Invalid, message);
}

/** The log URL without a trailing slash; only http and https. */
export function normalizeLogUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalid(`the log URL ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw invalid(`the log URL must be http or https: ${url}`);
  return url.replace(/\/+$/, "");
}

/** Check the keys and the threshold of a policy; BkvError(Invalid) naming what is wrong. */
export function checkPolicy(policy: TrustPolicy): TrustPolicy {
  let logPublic: Uint8Array;
  try {
    const log = parseVerifierKey(policy.logKey);
    if (log.type !== SIG_ED25519) throw invalid("the log key is not an Ed25519 key");
    logPublic = log.publicKey;
  } catch (e) {
    if (e instanceof BkvError) throw e;
    throw invalid(`bad log key: ${(e as Error).message}`);
  }
  for (const k of policy.witnessKeys) {
    let type: number;
    try {
      type = parseVerifierKey(k).type;
    } catch (e) {
      throw invalid(`bad witness key ${k}: ${(e as Error).message}`);
    }
    if (type !== SIG_COSIGNATURE_V1) throw invalid(`witness key ${k} is not a cosignature/v1 key`);
    if (bytesEqual(parseVerifierKey(k).publicKey, logPublic))
      throw invalid(`witness key ${k} is the log's own key: the log would witness itself`);
  }
  // A cosignature does not sign the witness's name: one key under two names would count twice.
  const twice = repeatedWitnessKey(policy.witnessKeys);
  if (twice !== undefined) throw invalid(twice);
  // With no witness required the log operator alone could show the monitor one history and
  // clients another: a monitor needs at least one witness, as a client's pins do.
  const t = policy.threshold;
  if (!Number.isInteger(t) || t < 1 || t > policy.witnessKeys.length) {
    throw invalid(
      `the witness threshold must be a whole number from 1 to the ${policy.witnessKeys.length} witness keys, got ${t}`,
    );
  }
  return policy;
}

/** Read and check DIR/transparency.json. */
export function readTransparencyConfig(dir: string): TransparencyConfig {
  const path = join(dir, TRANSPARENCY_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === "ENOENT" ? ErrorCode.Invalid : ErrorCode.Malformed;
    throw new BkvError(code, `cannot read ${path}: ${(e as Error).message}`);
  }
  const bad = (what: string) => new BkvError(ErrorCode.Malformed, `${path}: ${what}`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("a JSON object expected");
  const o = raw as Record<string, unknown>;
  if (typeof o.log !== "string") throw bad('"log" must be the log\'s URL');
  if (typeof o.logKey !== "string") throw bad('"logKey" must be a verifier key');
  if (!Array.isArray(o.witnessKeys) || !o.witnessKeys.every((k): k is string => typeof k === "string"))
    throw bad('"witnessKeys" must be a list of verifier keys');
  if (typeof o.witnessThreshold !== "number") throw bad('"witnessThreshold" must be a number');
  if (typeof o.namespace !== "string" || o.namespace === "") throw bad('"namespace" must be a string');
  const config: TransparencyConfig = {
    log: normalizeLogUrl(o.log),
    logKey: o.logKey,
    witnessKeys: o.witnessKeys,
    witnessThreshold: o.witnessThreshold,
    namespace: o.namespace,
  };
  checkPolicy({ logKey: config.logKey, witnessKeys: config.witnessKeys, threshold: config.witnessThreshold });
  return config;
}
