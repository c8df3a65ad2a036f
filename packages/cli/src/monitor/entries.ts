/**
 * The checks of one log entry (already authenticated against the checkpoint root by TiledLog):
 *
 *   entry.decode           the leaf decodes as a bkv-log-entry/v1
 *   artifact.decode        its artifact decodes as a fleet artifact
 *   artifact.epoch         the artifact's namespace and epoch are the entry's
 *   epoch.first            no earlier entry is a fleet at the same (namespace, epoch): the log holds
 *                          one fleet per epoch, and clients refuse a second one (BUNDLE_SPLIT_VIEW)
 *   epoch.next             (fleets and releases) the entry's epoch is its namespace's next one, 1
 *                          for its first entry, then the latest + 1, as the log promises to accept
 *                          (log-server.ts): an older epoch logged after a newer one, or a skipped
 *                          epoch, is a history an honest log never writes
 *   evidence.fetch         the log serves evidence with the entry's digest
 *   evidence.digest        that evidence hashes to the digest
 *   bundle.fetch           the log serves a bundle for (namespace, epoch) naming this entry
 *   bundle.signature       the log's signature over (namespace, epoch, SHA-256(artifact)) verifies
 *   bundle.inclusion       the bundle's cosigned checkpoint and inclusion proof verify
 *   evidence.decode        the evidence and its genesis statement decode
 *   evidence.artifact      the artifact is exactly what the genesis statement implies
 *   audit.<check>          every check of auditEvidence (attestation.N skipped without a vendor root)
 *   release.decode         (an artifact that is no fleet artifact) it decodes as a signed release
 *                          entry (@bkv/tlog release.ts): the entry is reported as a release, not a fleet
 *   release.epoch          the release names the entry's namespace and epoch
 *   release.evidence       the entry's evidence is empty (a release carries its own signature)
 *   release.signature      the release key given (--release-key) signed it; skipped without one
 *   members.fresh          no member key (signing or agreement, compared as points) of the genesis
 *                          statement is a member key of an earlier entry's fleet, in any namespace:
 *                          an HSM takes part in one genesis in its life, so a key in two fleets
 *                          proves a cloned HSM or a rolled-back NVRAM
 *
 * A check that cannot run because an earlier one failed is not reported.
 */
import { createHash } from "node:crypto";
import {
  auditEvidence,
  groupReuse,
  type MemberIndex,
  type PinnedVendorRoot,
  reusedKeysText,
} from "@bkv/client";
import {
  decodeLogEntry,
  decodeSignedRelease,
  type LogEntry,
  parseVerifierKey,
  type SignedRelease,
  type TrustPolicy,
  verifyBundleSignature,
  verifyLogBundle,
  verifyRelease,
} from "@bkv/tlog";
import {
  artifactMismatches,
  bytesEqual,
  decodeArtifact,
  decodeEvidence,
  decodeStatement,
  type FleetArtifact,
  type GenesisStatement,
  toHex,
} from "@bkv/wire";
import { type FleetView, fleetView, type SuccessorTerms } from "./diff.js";
import type { LogClient } from "./log-client.js";

export interface CheckFailure {
  readonly check: string;
  readonly message: string;
}

/** An entry the monitor read before, as the member index remembers it. */
export interface EarlierFleet {
  readonly index: number;
  readonly namespace: string;
  readonly epoch: number;
  /** hex, from its genesis statement */
  readonly fleetId: string;
}

/** A member of this entry's genesis whose key an earlier entry's fleet already has. */
export interface ReusedMember {
  /** 1-based, as in the genesis statement */
  readonly member: number;
  readonly platform: string;
  readonly key: "sign" | "agree";
  /** hex */
  readonly keyHex: string;
  readonly earlier: EarlierFleet;
}

/** A release entry as the monitor reports it. */
export interface ReleaseView {
  /** hex */
  readonly measurement: string;
  readonly sourceRevision: string;
  readonly buildRecipe: string;
  /** ISO time the release was signed */
  readonly time: string;
  /** "verified" under the given release key, "unchecked" without one, "bad" if it does not verify. */
  readonly signature: "verified" | "unchecked" | "bad";
}

export interface EntryResult {
  readonly index: number;
  readonly namespace: string | null;
  readonly epoch: number | null;
  /** The fleet the artifact describes, if it decoded. */
  readonly fleet: FleetView | null;
  /** The release the artifact is, if it is a release entry rather than a fleet. */
  readonly release: ReleaseView | null;
  readonly passed: readonly string[];
  readonly failures: readonly CheckFailure[];
  /** Audit checks not run: the attestation checks when no vendor root is configured. */
  readonly skipped: readonly string[];
  /** Members of its genesis that already took part in an earlier entry's (members.fresh). */
  readonly reusedMembers: readonly ReusedMember[];
}

export interface EntryContext {
  readonly client: LogClient;
  readonly policy: TrustPolicy;
  /** The verified checkpoint the entry was read under. */
  readonly size: number;
  readonly root: Uint8Array;
  readonly vendorRoots: readonly PinnedVendorRoot[] | null;
  readonly maxGuessLimit: number;
  readonly allowTestRoots?: boolean;
  readonly allowSmallFleet?: boolean;
  /** Raw Ed25519 release key release entries are checked against; absent: reported unchecked. */
  readonly releaseKey?: Uint8Array;
  /**
   * The member keys of the fleets of the entries checked before this one (any namespace); the
   * entry's own genesis members are checked against it (members.fresh) and then added.
   */
  readonly members?: MemberIndex<EarlierFleet>;
  /**
   * The fleet entries checked before this one, by "namespace\0epoch" → entry index (epoch.first);
   * this entry is added once its artifact's namespace and epoch are its own.
   */
  readonly epochs?: Map<string, number>;
  /** The latest epoch of each namespace among the entries checked before this one (epoch.next). */
  readonly latest?: Map<string, number>;
}

/** epoch.next: the entry's epoch follows its namespace's latest one; records it either way. */
function checkNextEpoch(
  entry: LogEntry,
  ctx: EntryContext,
  pass: (check: string) => void,
  fail: (check: string, msg: string) => void,
): void {
  if (ctx.latest === undefined) return;
  const latest = ctx.latest.get(entry.namespace);
  const next = latest === undefined ? 1 : latest + 1;
  if (entry.epoch === next) pass("epoch.next");
  else
    fail(
      "epoch.next",
      latest === undefined
        ? `the first entry of ${entry.namespace} is epoch ${entry.epoch}, not 1`
        : entry.epoch <= latest
          ? `${entry.namespace} epoch ${entry.epoch} logged after epoch ${latest}: an older epoch after a newer one`
          : `${entry.namespace} epoch ${entry.epoch} skips from ${latest}; the next epoch is ${next}`,
    );
  ctx.latest.set(entry.namespace, Math.max(latest ?? 0, entry.epoch));
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function checkEntry(index: number, raw: Uint8Array, ctx: EntryContext): Promise<EntryResult> {
  const passed: string[] = [];
  const failures: CheckFailure[] = [];
  const skipped: string[] = [];
  let reusedMembers: ReusedMember[] = [];
  const pass = (check: string) => passed.push(check);
  const fail = (check: string, msg: string) => failures.push({ check, message: msg });
  let entry: LogEntry | undefined;
  let artifact: FleetArtifact | undefined;
  let release: ReleaseView | null = null;
  // What the fleet's genesis froze for its successors, once its evidence decodes.
  let successors: SuccessorTerms | undefined;
  const result = (): EntryResult => ({
    index,
    namespace: entry?.namespace ?? null,
    epoch: entry?.epoch ?? null,
    fleet: artifact === undefined ? null : fleetView(index, artifact, entry?.evidenceDigest, successors),
    release,
    passed,
    failures,
    skipped,
    reusedMembers,
  });

  try {
    entry = decodeLogEntry(raw);
    pass("entry.decode");
  } catch (e) {
    fail("entry.decode", message(e));
    return result();
  }
  try {
    artifact = decodeArtifact(entry.artifact);
    pass("artifact.decode");
  } catch (e) {
    let signed: SignedRelease | undefined;
    try {
      signed = decodeSignedRelease(entry.artifact);
    } catch {
      // neither a fleet nor a release
    }
    if (signed === undefined) fail("artifact.decode", message(e));
    else {
      release = await checkReleaseEntry(index, entry, signed, ctx, pass, fail, skipped);
      return result();
    }
  }
  if (artifact !== undefined) {
    if (artifact.namespace === entry.namespace && artifact.epoch === entry.epoch) {
      pass("artifact.epoch");
      checkNextEpoch(entry, ctx, pass, fail);
      if (ctx.epochs !== undefined) {
        const key = `${entry.namespace}\0${entry.epoch}`;
        const earlier = ctx.epochs.get(key);
        if (earlier === undefined) {
          pass("epoch.first");
          ctx.epochs.set(key, index);
        } else
          fail(
            "epoch.first",
            `entry ${earlier} is already a fleet at ${entry.namespace} epoch ${entry.epoch}: two fleets at one epoch (clients that verified one refuse the other)`,
          );
      }
    } else
      fail(
        "artifact.epoch",
        `the entry is (${entry.namespace}, ${entry.epoch}), its artifact says (${artifact.namespace}, ${artifact.epoch})`,
      );
  }

  const [evidence] = await Promise.all([
    fetchEvidence(entry, ctx, pass, fail),
    checkBundle(index, entry, ctx, pass, fail),
  ]);
  if (evidence === undefined) return result();

  let st: GenesisStatement;
  try {
    st = decodeStatement(decodeEvidence(evidence).statement);
    pass("evidence.decode");
    successors = { releaseKey: toHex(st.releaseKey), maxGuessLimit: st.maxSuccessorGuessLimit };
  } catch (e) {
    fail("evidence.decode", message(e));
    return result();
  }
  if (artifact !== undefined) {
    const diffs = artifactMismatches(artifact, st);
    if (diffs.length === 0) pass("evidence.artifact");
    else
      fail(
        "evidence.artifact",
        `the evidence's genesis statement (fleet ${toHex(st.fleetId)}) differs from the artifact in: ${diffs.join(", ")}`,
      );
  }
  const report = auditEvidence(evidence, {
    vendorRoots: ctx.vendorRoots === null ? [] : [...ctx.vendorRoots],
    // The monitor reports the measurement; comparing it to a build is the auditor's job (bkv audit).
    measurements: [st.measurement],
    // Where the fleet is published: the entry's namespace and epoch under this log's key (the same
    // list of checks as `bkv audit --trust` and the transparency page).
    expectedNamespace: entry.namespace,
    expectedEpoch: entry.epoch,
    expectedLogKey: parseVerifierKey(ctx.policy.logKey).publicKey,
    // With a release key given (--release-key, or the dev folder's pins): the fleet must have frozen it.
    ...(ctx.releaseKey === undefined ? {} : { expectedReleaseKey: ctx.releaseKey }),
    // The fleet checks its successor's log entries under the witnesses it froze: they must be the
    // ones this monitor's policy trusts (check statement.witnesses).
    expectedWitnessPolicy: {
      witnesses: ctx.policy.witnessKeys.map((k) => {
        const v = parseVerifierKey(k);
        return { name: v.name, key: v.publicKey };
      }),
      threshold: ctx.policy.threshold,
    },
    maxGuessLimit: ctx.maxGuessLimit,
    allowTestRoots: ctx.allowTestRoots === true,
    allowSmallFleet: ctx.allowSmallFleet === true,
  });
  for (const c of report.checks) {
    const name = `audit.${c.name}`;
    if (ctx.vendorRoots === null && /^attestation\.\d+$/.test(c.name)) skipped.push(name);
    else if (c.ok) pass(name);
    else fail(name, c.detail);
  }
  if (ctx.members !== undefined) {
    reusedMembers = ctx.members
      .reused(st.members)
      .map((r) => ({ ...r, platform: st.members[r.member - 1]!.platform }));
    if (reusedMembers.length === 0) pass("members.fresh");
    else fail("members.fresh", reusedText(reusedMembers));
    ctx.members.add(st.members, {
      index,
      namespace: entry.namespace,
      epoch: entry.epoch,
      fleetId: toHex(st.fleetId),
    });
  }
  return result();
}

/** A release entry: its fields, its own (empty) evidence, the log's bundle, the release key's signature. */
async function checkReleaseEntry(
  index: number,
  entry: LogEntry,
  r: SignedRelease,
  ctx: EntryContext,
  pass: (check: string) => void,
  fail: (check: string, msg: string) => void,
  skipped: string[],
): Promise<ReleaseView> {
  pass("release.decode");
  if (r.namespace === entry.namespace && r.epoch === entry.epoch) {
    pass("release.epoch");
    checkNextEpoch(entry, ctx, pass, fail);
  } else
    fail(
      "release.epoch",
      `the entry is (${entry.namespace}, ${entry.epoch}), its release says (${r.namespace}, ${r.epoch})`,
    );
  if (bytesEqual(entry.evidenceDigest, sha256(new Uint8Array(0)))) pass("release.evidence");
  else fail("release.evidence", "a release entry's evidence must be empty");
  await checkBundle(index, entry, ctx, pass, fail);
  let signature: ReleaseView["signature"] = "unchecked";
  if (ctx.releaseKey === undefined) skipped.push("release.signature");
  else if (verifyRelease(r, ctx.releaseKey)) {
    pass("release.signature");
    signature = "verified";
  } else {
    fail("release.signature", "the release is not signed by the given release key");
    signature = "bad";
  }
  return {
    measurement: toHex(r.measurement),
    sourceRevision: r.sourceRevision,
    buildRecipe: r.buildRecipe,
    time: new Date(r.time).toISOString(),
    signature,
  };
}

function reusedText(reused: readonly ReusedMember[]): string {
  const which = groupReuse(reused).map(
    (g) =>
      `member ${g.member}'s ${reusedKeysText(g.keys)} ${g.keys.length === 1 ? "is a member key" : "are member keys"} of fleet ${g.earlier.fleetId} (entry ${g.earlier.index}: ${g.earlier.namespace} epoch ${g.earlier.epoch})`,
  );
  return `an HSM takes part in one genesis in its life, yet ${which.join("; ")}: cloned HSMs or rolled-back NVRAM`;
}

async function fetchEvidence(
  entry: LogEntry,
  ctx: EntryContext,
  pass: (check: string) => void,
  fail: (check: string, msg: string) => void,
): Promise<Uint8Array | undefined> {
  let evidence: Uint8Array | undefined;
  try {
    evidence = await ctx.client.evidence(entry.evidenceDigest);
  } catch (e) {
    fail("evidence.fetch", message(e));
    return undefined;
  }
  if (evidence === undefined) {
    fail("evidence.fetch", `the log has no evidence with digest ${toHex(entry.evidenceDigest)}`);
    return undefined;
  }
  pass("evidence.fetch");
  if (!bytesEqual(sha256(evidence), entry.evidenceDigest)) {
    fail("evidence.digest", `the evidence served for ${toHex(entry.evidenceDigest)} has another SHA-256`);
    return undefined;
  }
  pass("evidence.digest");
  return evidence;
}

async function checkBundle(
  index: number,
  entry: LogEntry,
  ctx: EntryContext,
  pass: (check: string) => void,
  fail: (check: string, msg: string) => void,
): Promise<void> {
  let bundle: Awaited<ReturnType<LogClient["bundle"]>>;
  try {
    bundle = await ctx.client.bundle(entry.namespace, entry.epoch);
  } catch (e) {
    fail("bundle.fetch", message(e));
    return;
  }
  if (bundle === undefined) {
    fail("bundle.fetch", `the log serves no bundle for (${entry.namespace}, ${entry.epoch})`);
    return;
  }
  const differs: string[] = [];
  if (bundle.namespace !== entry.namespace || bundle.epoch !== entry.epoch) differs.push("namespace/epoch");
  if (bundle.index !== index) differs.push(`index ${bundle.index}`);
  if (!bytesEqual(bundle.artifact, entry.artifact)) differs.push("artifact");
  if (!bytesEqual(bundle.evidenceDigest, entry.evidenceDigest)) differs.push("evidence digest");
  if (differs.length > 0) {
    fail(
      "bundle.fetch",
      `the log's bundle for (${entry.namespace}, ${entry.epoch}) differs from the entry: ${differs.join(", ")}`,
    );
    return;
  }
  pass("bundle.fetch");
  if (
    !verifyBundleSignature(
      ctx.policy.logKey,
      entry.namespace,
      entry.epoch,
      entry.artifact,
      bundle.logSignature,
    )
  ) {
    fail("bundle.signature", "the log's signature over (namespace, epoch, artifact) does not verify");
    return;
  }
  pass("bundle.signature");
  try {
    const cp = verifyLogBundle(bundle, ctx.policy).checkpoint;
    if (cp.size < ctx.size)
      throw new Error(`the bundle's checkpoint (size ${cp.size}) is older than ${ctx.size}`);
    if (cp.size === ctx.size && !bytesEqual(cp.root, ctx.root))
      throw new Error(`split view: the bundle's checkpoint of size ${cp.size} has another root`);
    pass("bundle.inclusion");
  } catch (e) {
    fail("bundle.inclusion", message(e));
  }
}
