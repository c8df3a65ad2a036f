/**
 * The genesis ceremony (`bkv fleet create`, run by `bkv dev` for a new folder): start every member's
 * HSM on its empty storage, collect their identity keys, let the first HSM create the fleet secrets
 * and seal them to every member, and let each member join and store the genesis entry in its host
 * storage. Afterwards no key exists that could add a member or change the guess limit.
 */

import { toHex } from "@bkv/wire";
import { HsmProcess } from "./hsm-process.js";
import { HostStorage } from "./storage.js";

export interface CeremonyMember {
  node: number;
  /** argv that starts this member's HSM process. */
  hsmCommand: string[];
  /** This member's host storage (SQLite). */
  storagePath: string;
}

export interface FleetCreated {
  fleetId: string;
  vaultPublicKey: string;
  guessesAllowed: number;
  members: { node: number; identity: string }[];
}

export async function createFleet(members: CeremonyMember[], guessLimit: number): Promise<FleetCreated> {
  const storages = members.map((m) => new HostStorage(m.storagePath));
  const hsms: HsmProcess[] = [];
  try {
    for (const [i, s] of storages.entries()) {
      const stored = s.load();
      if (stored.snapshot !== null || stored.entries.length > 0) {
        throw new Error(`node ${members[i]!.node} already has host storage: its fleet exists`);
      }
    }
    const identities: Uint8Array[] = [];
    for (const m of members) {
      const h = new HsmProcess(m.hsmCommand);
      hsms.push(h);
      h.send({ type: "boot", snapshot: null, entries: [] });
      const b = await h.next("booted");
      if (b.node !== 0) throw new Error(`node ${m.node}'s HSM already belongs to a fleet`);
      identities.push(b.identity);
    }
    hsms[0]!.send({ type: "genesis-create", members: identities, guessLimit });
    const { packages } = await hsms[0]!.next("genesis-packages");
    let created: FleetCreated | null = null;
    for (const [i, h] of hsms.entries()) {
      h.send({ type: "genesis-join", package: packages[i]! });
      const p = await h.next("persist");
      storages[i]!.persist(p.entries, p.snapshot, p.truncateFrom);
      h.send({ type: "persisted", id: p.id });
      const b = await h.next("booted");
      if (b.node !== members[i]!.node) throw new Error(`HSM ${members[i]!.node} joined as node ${b.node}`);
      created ??= {
        fleetId: toHex(b.fleetId),
        vaultPublicKey: toHex(b.vaultPublicKey),
        guessesAllowed: b.guessesAllowed,
        members: identities.map((id, k) => ({ node: members[k]!.node, identity: toHex(id) })),
      };
    }
    return created!;
  } finally {
    await Promise.all(hsms.map((h) => h.stop()));
    for (const s of storages) s.close();
  }
}
