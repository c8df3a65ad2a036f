/**
 * One HSM, one genesis: an honest HSM takes part in one genesis ceremony in its life (its NVRAM
 * records it; wiping NVRAM gives it new keys), so a member key that appears in two fleets proves a
 * cloned HSM or a rolled-back NVRAM. The log refuses such a fleet and `bkv monitor` fails it; both
 * keep a MemberIndex of the members of every fleet they have seen. Keys are compared as the points
 * they name (ed25519PointId, p256PointId), so one key under two encodings is one key.
 */
import { toHex } from "@bkv/wire";
import { p256 } from "@noble/curves/nist.js";
import { ed25519PointId } from "./strict.js";

/** The point a P-256 encoding names, as uncompressed hex, or null when it does not decode. */
export function p256PointId(encoded: Uint8Array): string | null {
  try {
    return p256.Point.fromBytes(encoded).toHex(false);
  } catch {
    return null;
  }
}

export interface MemberKeys {
  readonly signKey: Uint8Array;
  readonly agreeKey: Uint8Array;
}

/** A member of a new fleet whose key is already a member key of an earlier fleet. */
export interface MemberReuse<R> {
  /** 1-based position of the member in the new fleet. */
  readonly member: number;
  /** Which of its keys: the Ed25519 signing key or the P-256 agreement key. */
  readonly key: "sign" | "agree";
  /** hex of the key as the new fleet encodes it */
  readonly keyHex: string;
  /** The earlier fleet that holds it (the first one seen). */
  readonly earlier: R;
}

function keyIds(m: MemberKeys): { key: "sign" | "agree"; id: string; hex: string }[] {
  const sign = toHex(m.signKey);
  const agree = toHex(m.agreeKey);
  return [
    { key: "sign", id: `sign:${ed25519PointId(m.signKey) ?? `bytes:${sign}`}`, hex: sign },
    { key: "agree", id: `agree:${p256PointId(m.agreeKey) ?? `bytes:${agree}`}`, hex: agree },
  ];
}

/** The member keys of the fleets seen so far, each with the first fleet (of type R) that held it. */
export class MemberIndex<R> {
  private readonly seen = new Map<string, R>();

  /** The members of `members` whose sign or agree key an earlier fleet already holds. */
  reused(members: readonly MemberKeys[]): MemberReuse<R>[] {
    const out: MemberReuse<R>[] = [];
    members.forEach((m, i) => {
      for (const k of keyIds(m)) {
        const earlier = this.seen.get(k.id);
        if (earlier !== undefined) out.push({ member: i + 1, key: k.key, keyHex: k.hex, earlier });
      }
    });
    return out;
  }

  /** Record a fleet's members (a key already recorded keeps its first fleet). */
  add(members: readonly MemberKeys[], fleet: R): void {
    for (const m of members) for (const k of keyIds(m)) if (!this.seen.has(k.id)) this.seen.set(k.id, fleet);
  }
}

/** Reuses grouped by member and earlier fleet: e.g. member 1's signing and agreement keys, fleet X. */
export function groupReuse<R>(
  reused: readonly MemberReuse<R>[],
): { member: number; keys: ("sign" | "agree")[]; earlier: R }[] {
  const out: { member: number; keys: ("sign" | "agree")[]; earlier: R }[] = [];
  for (const r of reused) {
    const g = out.find((o) => o.member === r.member && o.earlier === r.earlier);
    if (g === undefined) out.push({ member: r.member, keys: [r.key], earlier: r.earlier });
    else g.keys.push(r.key);
  }
  return out;
}

/** "signing key", "agreement key" or "signing and agreement keys" */
export function reusedKeysText(keys: readonly ("sign" | "agree")[]): string {
  const names = keys.map((k) => (k === "sign" ? "signing" : "agreement"));
  return names.length === 1 ? `${names[0]} key` : `${names.join(" and ")} keys`;
}
