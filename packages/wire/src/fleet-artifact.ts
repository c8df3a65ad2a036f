/**
 * The fleet artifact: what a validation bundle vouches for, in canonical bytes. It names the fleet,
 * its public keys with their roles, its members, the code they run, its policy, how long clients
 * may use it, and its epoch within a namespace (one namespace per deployment; a new fleet of the
 * same deployment takes the next epoch). The log signs (namespace, epoch, SHA-256(artifact)); the
 * fleet counter-signs the log's signature bytes with its fleet signing key.
 */
import {
  AGREE_KEY_LENGTH,
  type AttestationBody,
  MEASUREMENT_LENGTH,
  SIGN_KEY_LENGTH,
} from "./attestation.js";
import { bytesEqual, concatBytes, utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";
import {
  FLEET_ID_LENGTH,
  type FleetPolicy,
  type GenesisStatement,
  MAX_MEMBERS,
} from "./genesis-statement.js";

const ARTIFACT_DOMAIN = utf8("bkv-fleet-artifact/v1");
const COUNTERSIGN_DOMAIN = utf8("bkv-fleet-countersignature/v1\0");

/** Key roles. vault-hpke: X25519, clients seal requests to it. fleet-signing: Ed25519, counter-signs bundles. */
export const KEY_ROLES = ["vault-hpke", "fleet-signing"] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export interface ArtifactMember {
  signKey: Uint8Array;
  agreeKey: Uint8Array;
  platform: AttestationBody["platform"];
}

export interface FleetArtifact {
  namespace: string;
  epoch: number;
  fleetId: Uint8Array;
  keys: { role: KeyRole; key: Uint8Array }[];
  members: ArtifactMember[];
  measurement: Uint8Array;
  policy: FleetPolicy;
  /** Clients accept the artifact from notBefore to notAfter (ms since the epoch). */
  notBefore: number;
  notAfter: number;
}

export function encodeArtifact(a: FleetArtifact): Uint8Array {
  return new Writer()
    .fixed(ARTIFACT_DOMAIN)
    .string(a.namespace)
    .u32(a.epoch)
    .fixed(a.fleetId)
    .list(a.keys, (w, k) => {
      w.string(k.role).bytes(k.key);
    })
    .list(a.members, (w, m) => {
      w.fixed(m.signKey).fixed(m.agreeKey).string(m.platform);
    })
    .fixed(a.measurement)
    .u32(a.policy.guessLimit)
    .u32(a.policy.n)
    .u32(a.policy.quorum)
    .u64(a.notBefore)
    .u64(a.notAfter)
    .finish();
}

export function decodeArtifact(b: Uint8Array): FleetArtifact {
  const r = new Reader(b, "fleet artifact");
  const d = r.fixed(ARTIFACT_DOMAIN.length, "domain");
  check(
    d.every((x, i) => x === ARTIFACT_DOMAIN[i]),
    "fleet artifact: wrong domain",
  );
  const namespace = r.string("namespace", 255);
  const epoch = r.u32("epoch");
  const fleetId = r.fixed(FLEET_ID_LENGTH, "fleet id");
  const keys = r.list("keys", 8, (r) => {
    const role = r.string("role", 32);
    check((KEY_ROLES as readonly string[]).includes(role), `fleet artifact: unknown key role ${role}`);
    return { role: role as KeyRole, key: r.bytes("key", 64) };
  });
  const members = r.list("members", MAX_MEMBERS, (r) => ({
    signKey: r.fixed(SIGN_KEY_LENGTH, "member sign key"),
    agreeKey: r.fixed(AGREE_KEY_LENGTH, "member agree key"),
    platform: r.string("platform", 64),
  }));
  const measurement = r.fixed(MEASUREMENT_LENGTH, "measurement");
  const policy = { guessLimit: r.u32("guess limit"), n: r.u32("n"), quorum: r.u32("quorum") };
  const notBefore = r.u64("not before");
  const notAfter = r.u64("not after");
  r.end();
  for (const role of KEY_ROLES) {
    check(keys.filter((k) => k.role === role).length === 1, `fleet artifact: needs exactly one ${role} key`);
  }
  check(
    keys.find((k) => k.role === "vault-hpke")!.key.length === 32,
    "fleet artifact: vault key is 32 bytes",
  );
  check(
    keys.find((k) => k.role === "fleet-signing")!.key.length === 32,
    "fleet artifact: signing key is 32 bytes",
  );
  check(notBefore <= notAfter, "fleet artifact: validity window ends before it starts");
  return { namespace, epoch, fleetId, keys, members, measurement, policy, notBefore, notAfter };
}

export function artifactKey(a: FleetArtifact, role: KeyRole): Uint8Array {
  return a.keys.find((k) => k.role === role)!.key;
}

/** The bytes the fleet signs: the log's signature over the artifact, domain-separated. */
export function countersignMessage(logSignature: Uint8Array): Uint8Array {
  return concatBytes(COUNTERSIGN_DOMAIN, logSignature);
}

/** The artifact of a fleet, from its genesis statement. */
export function artifactFromStatement(
  st: GenesisStatement,
  o: { namespace: string; epoch: number; notBefore: number; notAfter: number },
): FleetArtifact {
  return {
    namespace: o.namespace,
    epoch: o.epoch,
    fleetId: st.fleetId,
    keys: [
      { role: "vault-hpke", key: st.vaultPublicKey },
      { role: "fleet-signing", key: st.fleetSigningKey },
    ],
    members: st.members.map((m) => ({ signKey: m.signKey, agreeKey: m.agreeKey, platform: m.platform })),
    measurement: st.measurement,
    policy: st.policy,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
  };
}

/** What differs between an artifact and the genesis statement it claims to describe (empty: none). */
export function artifactMismatches(a: FleetArtifact, st: GenesisStatement): string[] {
  const out: string[] = [];
  if (!bytesEqual(a.fleetId, st.fleetId)) out.push("fleet id");
  if (!bytesEqual(artifactKey(a, "vault-hpke"), st.vaultPublicKey)) out.push("vault key");
  if (!bytesEqual(artifactKey(a, "fleet-signing"), st.fleetSigningKey)) out.push("fleet signing key");
  if (!bytesEqual(a.measurement, st.measurement)) out.push("measurement");
  if (
    a.policy.guessLimit !== st.policy.guessLimit ||
    a.policy.n !== st.policy.n ||
    a.policy.quorum !== st.policy.quorum
  )
    out.push("policy");
  const sameMembers =
    a.members.length === st.members.length &&
    a.members.every(
      (m, i) =>
        bytesEqual(m.signKey, st.members[i]!.signKey) &&
        bytesEqual(m.agreeKey, st.members[i]!.agreeKey) &&
        m.platform === st.members[i]!.platform,
    );
  if (!sameMembers) out.push("members");
  return out;
}
