/**
 * Shared pieces of the in-process fleet tests: a vault client through one node's host, the guess
 * counts each live node holds for a user, and a watch on the entries every node applies.
 */
import { VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { toHex } from "@bkv/wire";
import type { SimFleet } from "../src/index.js";

/** Cheap client key stretching: what is tested is the fleet, not the client's Argon2id. */
export const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

/** A vault client of `user` talking through node `node`'s host (default: the fleet's choice). */
export function simClient(f: SimFleet, user: string, node?: number): VaultClient {
  return new VaultClient({
    user,
    vaultPublicKey: f.vaultPublicKey(),
    transport: f.transport(node),
    keyStretching: LIGHT,
    hpke: nodeHpkeSealer,
    now: () => f.time,
  });
}

/** Each node's count of guesses used on `user`'s record: null for a node that is down, -1 for no record. */
export function guessesUsed(f: SimFleet, user: string): (number | null)[] {
  return f.nodes.map((n) =>
    n.core === null ? null : (n.core.inspect().state.records.get(user)?.guessesUsed ?? -1),
  );
}

/** Every (index -> chain hash) any node ever applied; a second hash at one index is a safety break. */
export class CommitWatch {
  readonly at = new Map<number, string>();
  readonly violations: string[] = [];
  constructor(readonly f: SimFleet) {}
  check(): void {
    for (const n of this.f.nodes) {
      if (n.core === null) continue;
      const s = n.core.inspect().state;
      const h = toHex(s.chainHash);
      const seen = this.at.get(s.index);
      if (seen !== undefined && seen !== h)
        this.violations.push(`node ${n.id} applied a different entry ${s.index}`);
      if (s.index > 0) this.at.set(s.index, h);
    }
  }
}
