/**
 * What a client pins (trust.json, the SDK's TrustPins): the log's key, the witnesses' keys with a
 * threshold, the namespace of its deployment, the vendor roots HSM attestations must chain to, the
 * code measurements it accepts (or the release key whose published releases it accepts), and the largest guess limit it accepts. Nothing else: the fleet's
 * keys arrive over the air in validation bundles, and are believed only with the fleet's evidence.
 * Anything missing is an error, never "accept".
 */
import { noteVerifier, parseVerifierKey, SIG_COSIGNATURE_V1, SIG_ED25519 } from "@bkv/tlog";
import { BkvError, bytesEqual, ErrorCode, fromHex, toHex } from "@bkv/wire";
import type { PinnedVendorRoot } from "../audit/evidence-audit.js";
import { ed25519KeyProblem } from "../evidence/strict.js";

export type { PinnedVendorRoot } from "../audit/evidence-audit.js";

export interface TrustPins {
  /** The log's note verifier key, C2SP `name+hash+base64` form; its name is the log's origin. */
  logKey: string;
  /** Witnesses' cosignature/v1 verifier keys: each key once, each name once. */
  witnessKeys: string[];
  /** How many distinct witnesses must cosign a checkpoint. */
  witnessThreshold: number;
  /** The deployment's namespace in the log. */
  namespace: string;
  /** Vendor roots a member's attestation must chain to (a test root counts only with allowTestRoots). */
  vendorRoots: PinnedVendorRoot[];
  /**
   * The code measurements (SHA-256, 64 hex digits) the client accepts. May be empty only with
   * `release`: then the fleet's code is accepted only if it is published under the release key.
   */
  measurements: string[];
  /**
   * A release key the client pins instead of (or besides) measurements: a measurement not listed
   * above is accepted only if a release entry for it, signed by `key` (raw Ed25519, 64 hex digits),
   * is in `namespace` of the pinned log, proven against the fleet bundle's own checkpoint.
   */
  release?: { key: string; namespace: string };
  /** The largest guess limit the client accepts (tools write 10). */
  maxGuessLimit: number;
  /** Development only: attestations under a test vendor root count. */
  allowTestRoots?: boolean;
  /** Development only: fleets of fewer than 3 members are accepted. */
  allowSmallFleet?: boolean;
}

/** The guess limit tools write into trust.json when the fleet's is not known. */
export const DEFAULT_MAX_GUESS_LIMIT = 10;
/** The largest maxGuessLimit a pin may hold (a sanity bound, not a recommendation). */
export const MAX_PINNED_GUESS_LIMIT = 1000;

/** The largest checkpoint a client has seen and verified. */
export interface SeenCheckpoint {
  size: number;
  /** Root hash, standard base64. */
  root: string;
  /**
   * The newest epoch of the pinned namespace this client has verified (absent: none yet). Clients
   * follow the log to the newest epoch: a bundle for an older one is refused (BUNDLE_ROLLBACK).
   */
  epoch?: number;
  /**
   * SHA-256 (hex) of the fleet artifact this client verified at `epoch`. The log holds one fleet per
   * (namespace, epoch); a bundle for the same epoch with another artifact is two fleets at one epoch
   * (a log that appended what it should not) and is refused (BUNDLE_SPLIT_VIEW), so each user's
   * record lives in one fleet only. Absent in checkpoints stored before it was kept: then the next
   * verified artifact of that epoch is remembered.
   */
  artifact?: string;
}

/**
 * Where a client keeps the largest checkpoint it has seen (a file in the CLI, storage in a
 * browser). Updates are compare-and-swap: save(expected, next) stores next only if the store still
 * holds expected (same size and root, or both null), and says whether it did; a caller that lost
 * re-reads, so two verifications racing never replace a larger checkpoint with a smaller one.
 */
export interface CheckpointStore {
  load(): Promise<SeenCheckpoint | null>;
  save(expected: SeenCheckpoint | null, next: SeenCheckpoint): Promise<boolean>;
  /** Where this device also remembers the artifacts it has verified (optional; see VerifiedArtifactCache). */
  verified?: VerifiedArtifactCache;
}

export function sameCheckpoint(a: SeenCheckpoint | null, b: SeenCheckpoint | null): boolean {
  return a === null || b === null
    ? a === b
    : a.size === b.size &&
        a.root === b.root &&
        (a.epoch ?? 0) === (b.epoch ?? 0) &&
        (a.artifact ?? "") === (b.artifact ?? "");
}

/** A store that forgets when the process ends (tests, one-shot tools). */
export function memoryCheckpointStore(initial: SeenCheckpoint | null = null): CheckpointStore {
  let cp = initial;
  return {
    async load() {
      return cp;
    },
    async save(expected, next) {
      if (!sameCheckpoint(cp, expected)) return false;
      cp = { ...next };
      return true;
    },
  };
}

/**
 * Artifacts whose evidence this device has verified, by a key that binds the artifact's digest,
 * its evidence digest and the pins it was verified under (so the cost is paid once per epoch per
 * device, and changing the pins verifies again).
 */
export interface VerifiedArtifactCache {
  has(key: string): Promise<boolean>;
  add(key: string): Promise<void>;
}

/** A cache that forgets when the process ends; a VaultClient makes one unless it is given one. */
export function memoryVerifiedCache(): VerifiedArtifactCache {
  const keys = new Set<string>();
  return {
    async has(k) {
      return keys.has(k);
    },
    async add(k) {
      keys.add(k);
    },
  };
}

const invalid = (message: string): never => {
  throw new BkvError(ErrorCode.Invalid, `trust pins: ${message}`);
};

const isHex64 = (s: unknown): s is string => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);

/**
 * The witness keys, each parsed; refuses one key twice (under one name or two), one name for two
 * keys, and the log's own key as a witness (the log operator would witness its own checkpoints).
 */
function checkWitnesses(keys: string[], logKey: Uint8Array): void {
  const byName = new Map<string, string>();
  const byKey = new Map<string, string>();
  for (const k of keys) {
    let v: ReturnType<typeof parseVerifierKey>;
    try {
      v = parseVerifierKey(k);
      noteVerifier(v);
    } catch (e) {
      return invalid(`witness key ${JSON.stringify(k)} does not parse: ${(e as Error).message}`);
    }
    if (v.type !== SIG_COSIGNATURE_V1) invalid(`witness key ${v.name} is not a cosignature/v1 key`);
    const problem = ed25519KeyProblem(v.publicKey);
    if (problem !== null) invalid(`witness key ${v.name} is ${problem}`);
    if (bytesEqual(v.publicKey, logKey))
      invalid(`witness key ${v.name} is the log's own key: the log would witness itself`);
    const hex = toHex(v.publicKey);
    if (byKey.has(hex))
      invalid(`one witness key is pinned twice (as ${byKey.get(hex)} and ${v.name}): it would count twice`);
    if (byName.has(v.name)) invalid(`two witness keys are pinned under one name, ${v.name}`);
    byKey.set(hex, v.name);
    byName.set(v.name, hex);
  }
}

/**
 * Check pins read from a file or another untrusted place (or built in code) before use. Throws
 * INVALID naming what is missing or wrong; returns a copy with only the known fields.
 */
export function parseTrustPins(v: unknown): TrustPins {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return invalid("not an object");
  const o = v as Record<string, unknown>;
  const need = [
    "logKey",
    "witnessKeys",
    "witnessThreshold",
    "namespace",
    "vendorRoots",
    "measurements",
    "maxGuessLimit",
  ];
  const missing = need.filter((k) => o[k] === undefined);
  if (missing.length > 0) invalid(`missing ${missing.join(", ")}`);

  if (typeof o.logKey !== "string") return invalid("logKey must be a string");
  let log: ReturnType<typeof parseVerifierKey>;
  try {
    log = parseVerifierKey(o.logKey);
  } catch (e) {
    return invalid(`logKey does not parse: ${(e as Error).message}`);
  }
  if (log.type !== SIG_ED25519) invalid("logKey must be an Ed25519 (0x01) note key");
  const logProblem = ed25519KeyProblem(log.publicKey);
  if (logProblem !== null) invalid(`logKey is ${logProblem}`);

  if (!Array.isArray(o.witnessKeys) || !o.witnessKeys.every((k) => typeof k === "string"))
    invalid("witnessKeys must be a list of strings");
  const witnessKeys = [...(o.witnessKeys as string[])];
  checkWitnesses(witnessKeys, log.publicKey);
  const t = o.witnessThreshold;
  if (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > witnessKeys.length)
    invalid(`witnessThreshold must be a whole number from 1 to ${witnessKeys.length} (the witnesses pinned)`);

  if (typeof o.namespace !== "string" || o.namespace.length === 0)
    invalid("namespace must be a non-empty string");

  if (!Array.isArray(o.vendorRoots) || o.vendorRoots.length === 0)
    invalid("vendorRoots must list at least one {name, key, test}");
  const vendorRoots: PinnedVendorRoot[] = [];
  for (const r of o.vendorRoots as unknown[]) {
    const x = r as Record<string, unknown>;
    if (
      typeof x !== "object" ||
      x === null ||
      typeof x.name !== "string" ||
      x.name.length === 0 ||
      !isHex64(x.key) ||
      typeof x.test !== "boolean" ||
      (x.kind !== undefined && x.kind !== "ed25519" && x.kind !== "aws-nitro")
    )
      invalid(
        'each vendor root is {name: non-empty string, key: 64 lowercase hex digits, test: boolean, kind?: "ed25519" | "aws-nitro"}',
      );
    // An aws-nitro root is pinned by its certificate's SHA-256, which is any 32 bytes.
    const problem = x.kind === "aws-nitro" ? null : ed25519KeyProblem(fromHex(x.key as string));
    if (problem !== null) invalid(`vendor root ${x.name as string} is ${problem}`);
    if (vendorRoots.some((p) => p.key === x.key)) invalid(`vendor root ${x.name as string} is pinned twice`);
    if (vendorRoots.some((p) => p.name === x.name)) invalid(`two vendor roots are named ${x.name as string}`);
    vendorRoots.push({
      name: x.name as string,
      key: x.key as string,
      test: x.test as boolean,
      ...(x.kind === "aws-nitro" ? { kind: "aws-nitro" as const } : {}),
    });
  }

  let release: { key: string; namespace: string } | undefined;
  if (o.release !== undefined) {
    const r = o.release as Record<string, unknown>;
    if (
      typeof r !== "object" ||
      r === null ||
      Array.isArray(r) ||
      !isHex64(r.key) ||
      typeof r.namespace !== "string" ||
      r.namespace.length === 0
    )
      invalid("release must be {key: 64 lowercase hex digits (Ed25519), namespace: non-empty string}");
    const problem = ed25519KeyProblem(fromHex(r.key as string));
    if (problem !== null) invalid(`the release key is ${problem}`);
    if (r.namespace === o.namespace) invalid("the releases namespace must not be the fleet's namespace");
    release = { key: r.key as string, namespace: r.namespace as string };
  }
  if (!Array.isArray(o.measurements) || !o.measurements.every(isHex64))
    invalid("measurements must be a list of SHA-256 measurements (64 lowercase hex digits)");
  if ((o.measurements as string[]).length === 0 && release === undefined)
    invalid(
      "measurements must list at least one SHA-256 measurement (64 lowercase hex digits), unless a release key is pinned",
    );
  const m = o.maxGuessLimit;
  if (typeof m !== "number" || !Number.isInteger(m) || m < 1 || m > MAX_PINNED_GUESS_LIMIT)
    invalid(`maxGuessLimit must be a whole number from 1 to ${MAX_PINNED_GUESS_LIMIT}`);
  for (const flag of ["allowTestRoots", "allowSmallFleet"] as const)
    if (o[flag] !== undefined && typeof o[flag] !== "boolean") invalid(`${flag} must be true or false`);

  return {
    logKey: o.logKey,
    witnessKeys,
    witnessThreshold: t as number,
    namespace: o.namespace as string,
    vendorRoots,
    measurements: [...new Set(o.measurements as string[])],
    maxGuessLimit: m as number,
    ...(release === undefined ? {} : { release }),
    ...(o.allowTestRoots === true ? { allowTestRoots: true } : {}),
    ...(o.allowSmallFleet === true ? { allowSmallFleet: true } : {}),
  };
}
