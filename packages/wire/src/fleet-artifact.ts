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
  MAX_NAMESPACE_BYTES,
} from "./genesis-statement.js";

const ARTIFACT_DOMAIN = utf8("bkv-fleet-artifact/v1");
const COUNTERSIGN_DOMAIN = utf8("bkv-fleet-countersignature/v2\0");
const LOG_BUNDLE_DOMAIN = "bkv-bundle/v1";

/**
 * The longest validity window (notAfter - notBefore) a fleet counter-signs: three years. A bundle
 * the fleet vouches for cannot outlive the fleet's planned replacement by much.
 */
export const MAX_ARTIFACT_VALIDITY_MS = 3 * 366 * 24 * 60 * 60 * 1000;
/**
 * How far ahead of the HSM's own clock a window may start. With the length limit, no bundle the
 * fleet counter-signs is valid later than MAX_ARTIFACT_LEAD_MS + MAX_ARTIFACT_VALIDITY_MS from the
 * moment it signed: a host cannot collect windows that start decades ahead, back to back.
 */
export const MAX_ARTIFACT_LEAD_MS = 400 * 24 * 60 * 60 * 1000;

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
  const namespace = r.string("namespace", MAX_NAMESPACE_BYTES);
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

/**
 * What the log signs for each appended artifact (its "bundle signature"):
 *
 *     "bkv-bundle/v1" || 0x00 || u16 len(namespace) || namespace (UTF-8) || u32 epoch || SHA-256(artifact)
 *
 * Here so that the HSM core (which has no log code) checks the very bytes the log signed.
 */
export function logBundleMessage(namespace: string, epoch: number, artifactDigest: Uint8Array): Uint8Array {
  const ns = utf8(namespace);
  check(ns.length >= 1 && ns.length <= 0xffff, "log bundle message: the namespace must be 1..65535 bytes");
  check(
    Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xffffffff,
    `log bundle message: bad epoch ${epoch}`,
  );
  check(artifactDigest.length === 32, "log bundle message: the artifact digest is 32 bytes");
  const head = new Uint8Array([0x00, ns.length >> 8, ns.length & 0xff]);
  const ep = new Uint8Array(4);
  new DataView(ep.buffer).setUint32(0, epoch);
  return concatBytes(utf8(LOG_BUNDLE_DOMAIN), head, ns, ep, artifactDigest);
}

/**
 * The bytes the fleet signs (its counter-signature), domain-separated and bound to what it vouches
 * for: the namespace, the epoch, SHA-256 of the artifact, and the log's signature over them.
 */
export function countersignMessage(o: {
  namespace: string;
  epoch: number;
  artifactDigest: Uint8Array;
  logSignature: Uint8Array;
}): Uint8Array {
  check(o.artifactDigest.length === 32, "countersign message: the artifact digest is 32 bytes");
  check(o.logSignature.length === 64, "countersign message: a log signature is 64 bytes");
  return new Writer()
    .fixed(COUNTERSIGN_DOMAIN)
    .string(o.namespace)
    .u32(o.epoch)
    .fixed(o.artifactDigest)
    .fixed(o.logSignature)
    .finish();
}

/** The artifact of a fleet, from its genesis statement. */
export function artifactFromStatement(
  st: GenesisStatement,
  o: { notBefore: number; notAfter: number },
): FleetArtifact {
  return {
    namespace: st.namespace,
    epoch: st.epoch,
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
  if (a.namespace !== st.namespace) out.push("namespace");
  if (a.epoch !== st.epoch) out.push("epoch");
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
