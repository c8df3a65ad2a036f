/**
 * A fleet as the monitor reports it (from its artifact, in hex and ISO dates), and what changed
 * from the previous epoch of the same namespace: keys by role, members, measurement, policy.
 */
import type { FleetArtifact } from "@bkv/wire";
import { toHex } from "@bkv/wire";

export interface FleetMemberView {
  readonly platform: string;
  readonly signKey: string;
  readonly agreeKey: string;
}

export interface FleetView {
  readonly index: number;
  readonly namespace: string;
  readonly epoch: number;
  readonly fleetId: string;
  readonly measurement: string;
  readonly policy: { readonly guessLimit: number; readonly n: number; readonly quorum: number };
  /** role → hex public key */
  readonly keys: Readonly<Record<string, string>>;
  readonly members: readonly FleetMemberView[];
  readonly notBefore: string;
  readonly notAfter: string;
  /** hex SHA-256 of the fleet's evidence, as the log entry names it (GET <log>/evidence/<it>) */
  readonly evidenceDigest?: string;
  /** What the fleet's genesis statement froze for its successors (once its evidence decoded). */
  readonly successors?: SuccessorTerms;
}

/** What a fleet accepts of a successor, frozen at genesis (docs/migration.md §2). */
export interface SuccessorTerms {
  /** The release key (raw Ed25519, hex) a successor's code must be released under. */
  readonly releaseKey: string;
  /** The highest guess limit a successor may have. */
  readonly maxGuessLimit: number;
}

export function fleetView(
  index: number,
  a: FleetArtifact,
  evidenceDigest?: Uint8Array,
  successors?: SuccessorTerms,
): FleetView {
  return {
    index,
    namespace: a.namespace,
    epoch: a.epoch,
    fleetId: toHex(a.fleetId),
    measurement: toHex(a.measurement),
    policy: { guessLimit: a.policy.guessLimit, n: a.policy.n, quorum: a.policy.quorum },
    keys: Object.fromEntries(a.keys.map((k) => [k.role, toHex(k.key)])),
    members: a.members.map((m) => ({
      platform: m.platform,
      signKey: toHex(m.signKey),
      agreeKey: toHex(m.agreeKey),
    })),
    notBefore: isoTime(a.notBefore),
    notAfter: isoTime(a.notAfter),
    ...(evidenceDigest === undefined ? {} : { evidenceDigest: toHex(evidenceDigest) }),
    ...(successors === undefined ? {} : { successors }),
  };
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

export interface Change<T> {
  readonly from: T;
  readonly to: T;
}

export interface FleetDiff {
  readonly previousEpoch: number;
  readonly previousIndex: number;
  readonly fleetId: Change<string> | null;
  readonly keys: {
    readonly added: readonly { role: string; key: string }[];
    readonly removed: readonly { role: string; key: string }[];
    readonly changed: readonly ({ role: string } & Change<string>)[];
  };
  readonly members: {
    readonly added: readonly FleetMemberView[];
    readonly removed: readonly FleetMemberView[];
    /** Same sign key, other agreement key or platform. */
    readonly changed: readonly { signKey: string; from: FleetMemberView; to: FleetMemberView }[];
  };
  readonly measurement: Change<string> | null;
  /** e.g. {field: "guess limit", from: 10, to: 20} */
  readonly policy: readonly ({ field: string } & Change<number>)[];
  readonly validity: Change<{ notBefore: string; notAfter: string }> | null;
}

const POLICY_FIELDS: readonly [keyof FleetView["policy"], string][] = [
  ["guessLimit", "guess limit"],
  ["n", "members (n)"],
  ["quorum", "quorum"],
];

export function diffFleets(prev: FleetView, cur: FleetView): FleetDiff {
  const roles = [...new Set([...Object.keys(prev.keys), ...Object.keys(cur.keys)])].sort();
  const keys = {
    added: [] as { role: string; key: string }[],
    removed: [] as { role: string; key: string }[],
  };
  const changedKeys: ({ role: string } & Change<string>)[] = [];
  for (const role of roles) {
    const a = prev.keys[role];
    const b = cur.keys[role];
    if (a === undefined && b !== undefined) keys.added.push({ role, key: b });
    else if (a !== undefined && b === undefined) keys.removed.push({ role, key: a });
    else if (a !== undefined && b !== undefined && a !== b) changedKeys.push({ role, from: a, to: b });
  }
  const prevBySign = new Map(prev.members.map((m) => [m.signKey, m]));
  const curBySign = new Map(cur.members.map((m) => [m.signKey, m]));
  const changedMembers: { signKey: string; from: FleetMemberView; to: FleetMemberView }[] = [];
  for (const [k, m] of curBySign) {
    const p = prevBySign.get(k);
    if (p !== undefined && (p.agreeKey !== m.agreeKey || p.platform !== m.platform))
      changedMembers.push({ signKey: k, from: p, to: m });
  }
  const sameWindow = prev.notBefore === cur.notBefore && prev.notAfter === cur.notAfter;
  return {
    previousEpoch: prev.epoch,
    previousIndex: prev.index,
    fleetId: prev.fleetId === cur.fleetId ? null : { from: prev.fleetId, to: cur.fleetId },
    keys: { ...keys, changed: changedKeys },
    members: {
      added: cur.members.filter((m) => !prevBySign.has(m.signKey)),
      removed: prev.members.filter((m) => !curBySign.has(m.signKey)),
      changed: changedMembers,
    },
    measurement:
      prev.measurement === cur.measurement ? null : { from: prev.measurement, to: cur.measurement },
    policy: POLICY_FIELDS.filter(([f]) => prev.policy[f] !== cur.policy[f]).map(([f, field]) => ({
      field,
      from: prev.policy[f],
      to: cur.policy[f],
    })),
    validity: sameWindow
      ? null
      : {
          from: { notBefore: prev.notBefore, notAfter: prev.notAfter },
          to: { notBefore: cur.notBefore, notAfter: cur.notAfter },
        },
  };
}

/** Nothing but the epoch differs. */
export function isEmptyDiff(d: FleetDiff): boolean {
  return (
    d.fleetId === null &&
    d.keys.added.length + d.keys.removed.length + d.keys.changed.length === 0 &&
    d.members.added.length + d.members.removed.length + d.members.changed.length === 0 &&
    d.measurement === null &&
    d.policy.length === 0 &&
    d.validity === null
  );
}

/**
 * The fleets seen so far, by namespace: the previous epoch of a namespace for a new entry is the
 * highest epoch below it among the entries logged before it.
 */
export class FleetHistory {
  private readonly byNamespace = new Map<string, FleetView[]>();

  previous(f: FleetView): FleetView | undefined {
    let best: FleetView | undefined;
    for (const v of this.byNamespace.get(f.namespace) ?? []) {
      if (v.epoch < f.epoch && (best === undefined || v.epoch > best.epoch)) best = v;
    }
    return best;
  }

  add(f: FleetView): void {
    const list = this.byNamespace.get(f.namespace) ?? [];
    list.push(f);
    this.byNamespace.set(f.namespace, list);
  }
}
