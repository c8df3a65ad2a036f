/**
 * The audit of a fleet's deployment evidence, from public data only: the evidence bytes, the vendor
 * roots the auditor pins, the code measurements it accepts, and its policy. One verifier for every
 * caller: the SDK's bundle check (Node and browsers), `bkv audit`, `bkv monitor`, the log and the
 * transparency page all call this function, and it verifies every signature with
 * strictEd25519Verify (never a verifier the caller passes in), so they all give the same verdict.
 * Every check has a stable name; the audit holds only if every check passes.
 */
import {
  attestationSignedBytes,
  bytesEqual,
  decodeEvidence,
  decodeStatement,
  encodeEvidence,
  encodeStatement,
  type FleetEvidence,
  type Attestation as FleetMember,
  fromHex,
  GENESIS_CHALLENGE_LENGTH,
  type GenesisStatement,
  quorumOf,
  toHex,
  type WitnessPolicy,
} from "@bkv/wire";
import {
  ed25519KeyProblem,
  ed25519PointId,
  p256PointProblem,
  strictEd25519Verify,
} from "../evidence/strict.js";
import { verifyNitroMember } from "../nitro/nitro-member.js";

/**
 * A vendor root an auditor or client pins: its name (shown in reports), its Ed25519 public key
 * (64 hex digits), and whether it is a test root (a development vendor root such as `bkv dev`'s,
 * whose private key sits on a laptop): a test root counts only where allowTestRoots is set.
 */
export interface PinnedVendorRoot {
  name: string;
  key: string;
  test: boolean;
  /**
   * What `key` is: an Ed25519 vendor root key (the default), or "aws-nitro": the SHA-256 of a root
   * certificate of the AWS Nitro Enclaves PKI (AWS_NITRO_ROOT_SHA256 for the genuine one), which
   * Nitro members' attestation documents must chain to.
   */
  kind?: "ed25519" | "aws-nitro";
}

export interface AuditOptions {
  /**
   * The vendor roots attestations must chain to. A bare key (Uint8Array) is taken as a production
   * root named by its key (older callers); pin test roots as {name, key, test: true}.
   */
  vendorRoots: (PinnedVendorRoot | Uint8Array)[];
  /** The measurements (code) the auditor accepts; at least one of this and expectedMeasurement. */
  measurements?: Uint8Array[];
  /** One accepted measurement, e.g. rebuilt from source (added to `measurements`). */
  expectedMeasurement?: Uint8Array;
  /** If given, the evidence must be for this fleet (not an older one). */
  expectedFleetId?: Uint8Array;
  /** If given, the fleet's vault key must be this one (what clients are told to seal to). */
  expectedVaultKey?: Uint8Array;
  /** If given, the statement must name this namespace, epoch and log key (raw 32-byte Ed25519). */
  expectedNamespace?: string;
  expectedEpoch?: number;
  expectedLogKey?: Uint8Array;
  /**
   * If given, the statement must freeze this release key (raw 32-byte Ed25519): the key the
   * auditor (or client) accepts released code under, and the only key under which this fleet will
   * accept a successor's code (docs/migration.md §2).
   */
  expectedReleaseKey?: Uint8Array;
  /**
   * If given, the statement must freeze this witness policy: the same witnesses (name and raw
   * cosignature/v1 key; order aside) and the same threshold. The fleet checks its successor's log
   * entries under the witnesses it froze, so a fleet that froze others than the auditor trusts
   * could accept a successor on checkpoints only those others cosigned.
   */
  expectedWitnessPolicy?: WitnessPolicy;
  /** The largest guess limit the auditor accepts. */
  maxGuessLimit: number;
  /** Development only: attestations under a root pinned as a test root count. */
  allowTestRoots?: boolean;
  /** Development only: fleets of 1 member pass (otherwise N is odd, 3 to 9). */
  allowSmallFleet?: boolean;
}

export interface AuditCheck {
  /** Stable name, e.g. "attestation.3" or "policy.guess-limit". */
  name: string;
  ok: boolean;
  detail: string;
}

export interface FleetSummary {
  fleetId: string;
  namespace: string;
  epoch: number;
  /** The log's raw Ed25519 key frozen at genesis, hex. */
  logKey: string;
  /** The release key frozen at genesis (raw Ed25519, hex): a successor's code must be released under it. */
  releaseKey: string;
  measurement: string;
  guessLimit: number;
  /** The highest guess limit a successor may have, frozen at genesis (at most guessLimit). */
  maxSuccessorGuessLimit: number;
  /** The log's witness policy frozen at genesis: witnesses (name, raw cosignature/v1 key hex) and threshold. */
  witnesses: { name: string; key: string }[];
  witnessThreshold: number;
  n: number;
  quorum: number;
  vaultPublicKey: string;
  fleetSigningKey: string;
  time: string;
  members: { node: number; platform: string; vendor: string; signKey: string; properties: string[] }[];
}

export interface AuditReport {
  ok: boolean;
  fleet: FleetSummary | null;
  checks: AuditCheck[];
}

/** The smallest fleet a client or an auditor accepts without allowSmallFleet. */
export const MIN_FLEET_SIZE = 3;

function allowedSize(n: number, allowSmall: boolean): boolean {
  return n >= (allowSmall ? 1 : MIN_FLEET_SIZE) && n <= 9 && n % 2 === 1;
}

interface Root {
  name: string;
  key: Uint8Array;
  test: boolean;
}

function rootsOf(o: AuditOptions): Root[] {
  const out: Root[] = [];
  for (const r of o.vendorRoots) {
    if (r instanceof Uint8Array) out.push({ name: toHex(r).slice(0, 16), key: r, test: false });
    else if ((r.kind ?? "ed25519") === "ed25519" && /^[0-9a-f]{64}$/.test(r.key))
      out.push({ name: r.name, key: fromHex(r.key), test: r.test === true });
  }
  // A pinned key that is not a strict Ed25519 key verifies nothing.
  return out.filter((r) => ed25519KeyProblem(r.key) === null);
}

/** The pinned AWS Nitro root certificate fingerprints. */
function nitroRootsOf(o: AuditOptions): Root[] {
  const out: Root[] = [];
  for (const r of o.vendorRoots)
    if (!(r instanceof Uint8Array) && r.kind === "aws-nitro" && /^[0-9a-f]{64}$/.test(r.key))
      out.push({ name: r.name, key: fromHex(r.key), test: r.test === true });
  return out;
}

/** The check of one member's Nitro attestation document: [counts, detail]. */
function nitroCheck(a: FleetMember, roots: Root[], allowTestRoots: boolean): [boolean, string] {
  try {
    const v = verifyNitroMember(
      a,
      roots.map((r) => r.key),
    );
    const root = roots.find((r) => toHex(r.key) === v.root)!;
    const what = `${a.platform}: document of ${v.document.moduleId} made ${v.time}, chained to ${root.name}`;
    if (root.test && !allowTestRoots)
      return [false, `${what}, a test root (development only; not allowed here)`];
    return [true, `${what}${root.test ? " (a test root, allowed)" : ""}; names this member's keys`];
  } catch (e) {
    const code = (e as { code?: string }).code ?? "ERROR";
    return [false, `${a.platform}: ${code}: ${(e as Error).message}`];
  }
}

export function auditEvidence(bytes: Uint8Array, o: AuditOptions): AuditReport {
  const checks: AuditCheck[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  let ev: FleetEvidence;
  let st: GenesisStatement;
  try {
    ev = decodeEvidence(bytes);
    st = decodeStatement(ev.statement);
    const canonical = bytesEqual(encodeEvidence(ev), bytes) && bytesEqual(encodeStatement(st), ev.statement);
    add(
      "evidence.format",
      canonical,
      canonical ? "evidence and statement decode canonically" : "not canonical",
    );
  } catch (e) {
    add("evidence.format", false, `the evidence does not decode: ${(e as Error).message}`);
    return { ok: false, fleet: null, checks };
  }
  const n = st.members.length;
  const fleet: FleetSummary = {
    fleetId: toHex(st.fleetId),
    namespace: st.namespace,
    epoch: st.epoch,
    logKey: toHex(st.logKey),
    releaseKey: toHex(st.releaseKey),
    measurement: toHex(st.measurement),
    guessLimit: st.policy.guessLimit,
    maxSuccessorGuessLimit: st.maxSuccessorGuessLimit,
    witnesses: st.witnessPolicy.witnesses.map((w) => ({ name: w.name, key: toHex(w.key) })),
    witnessThreshold: st.witnessPolicy.threshold,
    n: st.policy.n,
    quorum: st.policy.quorum,
    vaultPublicKey: toHex(st.vaultPublicKey),
    fleetSigningKey: toHex(st.fleetSigningKey),
    time:
      Number.isFinite(st.time) && Math.abs(st.time) <= 8.64e15
        ? new Date(st.time).toISOString()
        : String(st.time),
    members: st.members.map((m, i) => ({
      node: i + 1,
      platform: m.platform,
      vendor: m.vendor,
      signKey: toHex(m.signKey),
      properties: m.properties,
    })),
  };

  if (o.expectedFleetId !== undefined) {
    const same = bytesEqual(st.fleetId, o.expectedFleetId);
    add(
      "fleet.id",
      same,
      same
        ? `evidence is for fleet ${fleet.fleetId}`
        : `evidence is for fleet ${fleet.fleetId}, not ${toHex(o.expectedFleetId)}`,
    );
  }
  if (o.expectedVaultKey !== undefined) {
    const same = bytesEqual(st.vaultPublicKey, o.expectedVaultKey);
    add(
      "fleet.vault-key",
      same,
      same ? "the fleet's vault key is the expected one" : "the fleet's vault key differs",
    );
  }
  if (o.expectedNamespace !== undefined) {
    const same = st.namespace === o.expectedNamespace;
    add(
      "statement.namespace",
      same,
      same
        ? `the fleet serves namespace ${JSON.stringify(st.namespace)}`
        : `the fleet serves namespace ${JSON.stringify(st.namespace)}, not ${JSON.stringify(o.expectedNamespace)}`,
    );
  }
  if (o.expectedEpoch !== undefined) {
    const same = st.epoch === o.expectedEpoch;
    add(
      "statement.epoch",
      same,
      same ? `the fleet is epoch ${st.epoch}` : `the fleet is epoch ${st.epoch}, not ${o.expectedEpoch}`,
    );
  }
  if (o.expectedLogKey !== undefined) {
    const same = bytesEqual(st.logKey, o.expectedLogKey);
    add(
      "statement.log-key",
      same,
      same
        ? "the fleet counter-signs only what the expected log signed"
        : `the fleet froze log key ${fleet.logKey}, not ${toHex(o.expectedLogKey)}`,
    );
  }
  if (o.expectedReleaseKey !== undefined) {
    const same = bytesEqual(st.releaseKey, o.expectedReleaseKey);
    add(
      "statement.release-key",
      same,
      same
        ? "the fleet accepts a successor's code only if released under the expected release key"
        : `the fleet froze release key ${fleet.releaseKey}, not ${toHex(o.expectedReleaseKey)}`,
    );
  }
  if (o.expectedWitnessPolicy !== undefined) {
    const describe = (p: WitnessPolicy) =>
      `${p.threshold} of ${p.witnesses.map((w) => `${w.name} ${toHex(w.key).slice(0, 16)}`).join(", ")}`;
    const set = (p: WitnessPolicy) =>
      p.witnesses
        .map((w) => `${w.name} ${toHex(w.key)}`)
        .sort()
        .join("\n");
    const same =
      st.witnessPolicy.threshold === o.expectedWitnessPolicy.threshold &&
      set(st.witnessPolicy) === set(o.expectedWitnessPolicy);
    add(
      "statement.witnesses",
      same,
      same
        ? `the fleet checks a successor's log entries under the expected witnesses (${describe(st.witnessPolicy)})`
        : `the fleet froze witnesses ${describe(st.witnessPolicy)}, not ${describe(o.expectedWitnessPolicy)}`,
    );
  }

  const small = o.allowSmallFleet === true;
  const sizeOk = st.policy.n === n && allowedSize(n, small) && st.policy.quorum === quorumOf(n);
  add(
    "policy.members",
    sizeOk,
    `${n} members, policy says n=${st.policy.n} quorum=${st.policy.quorum}` +
      (sizeOk
        ? small && n < MIN_FLEET_SIZE
          ? " (a development fleet: allowSmallFleet)"
          : ""
        : ` (needs an odd n from ${small ? 1 : MIN_FLEET_SIZE} to 9 equal to the members, quorum ${quorumOf(n)})`),
  );
  const limitOk =
    Number.isInteger(o.maxGuessLimit) && st.policy.guessLimit >= 1 && st.policy.guessLimit <= o.maxGuessLimit;
  add(
    "policy.guess-limit",
    limitOk,
    `guess limit ${st.policy.guessLimit}` +
      (limitOk ? ` (at most ${o.maxGuessLimit})` : `, above the ${o.maxGuessLimit} accepted`),
  );

  const accepted = [
    ...(o.measurements ?? []),
    ...(o.expectedMeasurement === undefined ? [] : [o.expectedMeasurement]),
  ];
  const measured = accepted.some((m) => bytesEqual(m, st.measurement));
  add(
    "measurement.source",
    measured,
    measured
      ? `the fleet runs accepted code ${fleet.measurement}`
      : accepted.length === 0
        ? "no measurement is accepted (none pinned)"
        : `the fleet's code ${fleet.measurement} is not ${accepted.length === 1 ? `the expected ${toHex(accepted[0]!)}` : `one of the ${accepted.length} accepted`}`,
  );

  // Every member's keys are strict: an Ed25519 key of large order in its one canonical encoding,
  // a valid P-256 point.
  for (const [i, m] of st.members.entries()) {
    const signProblem = ed25519KeyProblem(m.signKey);
    const agreeProblem = p256PointProblem(m.agreeKey);
    add(
      `keys.${i + 1}`,
      signProblem === null && agreeProblem === null,
      signProblem === null && agreeProblem === null
        ? "strict Ed25519 sign key, valid P-256 agree key"
        : [signProblem && `sign key: ${signProblem}`, agreeProblem && `agree key: ${agreeProblem}`]
            .filter(Boolean)
            .join("; "),
    );
  }
  const fleetKeyProblem = ed25519KeyProblem(st.fleetSigningKey);
  add(
    "fleet.signing-key",
    fleetKeyProblem === null,
    fleetKeyProblem === null ? "strict Ed25519 key" : `the fleet signing key is ${fleetKeyProblem}`,
  );

  // Distinct by the points they name, not their bytes: one key under two encodings is one member.
  const signIds = st.members.map((m) => ed25519PointId(m.signKey) ?? `bytes:${toHex(m.signKey)}`);
  const distinct = st.members.every((a, i) =>
    st.members.every((b, j) => i === j || (signIds[i] !== signIds[j] && !bytesEqual(a.agreeKey, b.agreeKey))),
  );
  add("members.distinct", distinct, distinct ? "every member has its own keys" : "two members share a key");

  // One genesis per HSM: each member brought a fresh challenge of its own, in the statement it signed.
  const countOk = st.challenges.length === n && st.policy.n === n;
  add(
    "challenges.count",
    countOk,
    countOk
      ? `one challenge for each of the ${n} members`
      : `${st.challenges.length} challenges for ${n} members (policy n=${st.policy.n})`,
  );
  const wrongLength = st.challenges
    .map((c, i) => ({ node: i + 1, length: c.length }))
    .filter((c) => c.length !== GENESIS_CHALLENGE_LENGTH);
  add(
    "challenges.length",
    wrongLength.length === 0,
    wrongLength.length === 0
      ? `every challenge is ${GENESIS_CHALLENGE_LENGTH} bytes`
      : wrongLength.map((c) => `member ${c.node}'s challenge is ${c.length} bytes`).join("; "),
  );
  const repeated = st.challenges.findIndex((c, i) => st.challenges.some((d, j) => j < i && bytesEqual(c, d)));
  add(
    "challenges.distinct",
    repeated === -1,
    repeated === -1
      ? "no two members share a challenge"
      : `member ${repeated + 1} repeats another member's challenge`,
  );

  const roots = rootsOf(o);
  const nitroRoots = nitroRootsOf(o);
  for (const [i, a] of st.members.entries()) {
    const node = i + 1;
    if (a.nitroDocument !== undefined) {
      const [ok, detail] = nitroCheck(a, nitroRoots, o.allowTestRoots === true);
      add(`attestation.${node}`, ok, detail);
      const same = bytesEqual(a.measurement, st.measurement);
      add(
        `measurement.${node}`,
        same,
        same ? "attests the fleet's measurement" : `attests other code ${toHex(a.measurement)}`,
      );
      continue;
    }
    const signed = attestationSignedBytes(a);
    const root = roots.find((r) => strictEd25519Verify(r.key, signed, a.signature));
    const counts = root !== undefined && (!root.test || o.allowTestRoots === true);
    add(
      `attestation.${node}`,
      counts,
      root === undefined
        ? `${a.platform}: not signed by any trusted vendor root`
        : root.test && o.allowTestRoots !== true
          ? `${a.platform}: signed by ${root.name}, a test vendor root (development only; not allowed here)`
          : `${a.platform}: signed by vendor root ${root.name}${root.test ? " (a test root, allowed)" : ""}; ${a.vendor}`,
    );
    const same = bytesEqual(a.measurement, st.measurement);
    add(
      `measurement.${node}`,
      same,
      same ? "attests the fleet's measurement" : `attests other code ${toHex(a.measurement)}`,
    );
  }

  const sigCountOk = ev.signatures.length === n;
  if (!sigCountOk) add("signatures.count", false, `${ev.signatures.length} signatures for ${n} members`);
  for (const [i, a] of st.members.entries()) {
    const sig = ev.signatures[i];
    const ok = sig !== undefined && strictEd25519Verify(a.signKey, ev.statement, sig);
    add(
      `signature.${i + 1}`,
      ok,
      sig === undefined
        ? "missing"
        : ok
          ? "signed the genesis statement"
          : "does not verify (strictly) over the statement",
    );
  }
  return { ok: checks.every((c) => c.ok), fleet, checks };
}
