/**
 * The audit of a fleet's deployment evidence, from public data only: the evidence bytes, the vendor
 * root keys the auditor trusts, and the code measurement the auditor expects (rebuilt from source).
 * Browser-safe: the Ed25519 verifier is passed in (node:crypto in the CLI, WebCrypto or noble in a
 * page). Every check has a stable name; the audit holds only if every check passes.
 */
import {
  attestationSignedBytes,
  bytesEqual,
  decodeEvidence,
  decodeStatement,
  encodeEvidence,
  encodeStatement,
  type FleetEvidence,
  GENESIS_CHALLENGE_LENGTH,
  type GenesisStatement,
  quorumOf,
  toHex,
} from "@bkv/wire";

export type Ed25519Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;
export type Sha256 = (data: Uint8Array) => Uint8Array;

export interface AuditOptions {
  vendorRoots: Uint8Array[];
  /** The measurement the auditor rebuilt from source (or was given). */
  expectedMeasurement: Uint8Array;
  /** If given, the evidence must be for this fleet (not an older one). */
  expectedFleetId?: Uint8Array;
  /** If given, the fleet's vault key must be this one (what clients are told to seal to). */
  expectedVaultKey?: Uint8Array;
  /** The largest guess limit the auditor accepts. */
  maxGuessLimit: number;
  verify: Ed25519Verify;
  sha256: Sha256;
}

export interface AuditCheck {
  /** Stable name, e.g. "attestation.3" or "policy.guess-limit". */
  name: string;
  ok: boolean;
  detail: string;
}

export interface FleetSummary {
  fleetId: string;
  measurement: string;
  guessLimit: number;
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

function allowedSize(n: number): boolean {
  return n >= 1 && n <= 9 && n % 2 === 1;
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
    measurement: toHex(st.measurement),
    guessLimit: st.policy.guessLimit,
    n: st.policy.n,
    quorum: st.policy.quorum,
    vaultPublicKey: toHex(st.vaultPublicKey),
    fleetSigningKey: toHex(st.fleetSigningKey),
    time: new Date(st.time).toISOString(),
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

  const sizeOk = st.policy.n === n && allowedSize(n) && st.policy.quorum === quorumOf(n);
  add(
    "policy.members",
    sizeOk,
    `${n} members, policy says n=${st.policy.n} quorum=${st.policy.quorum}` +
      (sizeOk ? "" : ` (needs an odd n from 1 to 9 equal to the members, quorum ${quorumOf(n)})`),
  );
  const limitOk = st.policy.guessLimit >= 1 && st.policy.guessLimit <= o.maxGuessLimit;
  add(
    "policy.guess-limit",
    limitOk,
    `guess limit ${st.policy.guessLimit}` +
      (limitOk ? ` (at most ${o.maxGuessLimit})` : `, above the ${o.maxGuessLimit} accepted`),
  );

  const measured = bytesEqual(st.measurement, o.expectedMeasurement);
  add(
    "measurement.source",
    measured,
    measured
      ? `the fleet runs the expected code ${fleet.measurement}`
      : `the fleet's code ${fleet.measurement} is not the expected ${toHex(o.expectedMeasurement)}`,
  );

  const distinct = st.members.every((a, i) =>
    st.members.every(
      (b, j) => i === j || (!bytesEqual(a.signKey, b.signKey) && !bytesEqual(a.agreeKey, b.agreeKey)),
    ),
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

  for (const [i, a] of st.members.entries()) {
    const node = i + 1;
    const root = o.vendorRoots.find((r) => o.verify(r, attestationSignedBytes(a), a.signature));
    add(
      `attestation.${node}`,
      root !== undefined,
      root !== undefined
        ? `${a.platform}: signed by vendor root ${toHex(root).slice(0, 16)}…; ${a.vendor}`
        : `${a.platform}: not signed by any trusted vendor root`,
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
    const ok = sig !== undefined && o.verify(a.signKey, ev.statement, sig);
    add(
      `signature.${i + 1}`,
      ok,
      sig === undefined
        ? "missing"
        : ok
          ? "signed the genesis statement"
          : "does not verify over the statement",
    );
  }

  return { ok: checks.every((c) => c.ok), fleet, checks };
}
