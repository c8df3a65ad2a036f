/**
 * Fleet genesis: one HSM creates the fleet secrets (OPAQUE server setup, HPKE vault key) in the
 * genesis entry, the first entry of every member's log, and seals that entry to each member under a
 * key from the X25519 agreement of the creator's and the member's identity keys. A member opens its
 * package, checks that it is listed, and starts its log with the entry. (Attestations, the code
 * measurement and member signatures over a genesis statement come with the deployment evidence.)
 */
import { bytesEqual, check, Reader, utf8, Writer } from "@bkv/wire";
import { decodeEntry, type Entry } from "./log-entry.js";
import type { HsmCrypto } from "./platform.js";

const MAGIC = utf8("BKVG");
const VERSION = 1;

export interface GenesisPackage {
  fleetId: Uint8Array;
  creator: number;
  member: number;
  members: Uint8Array[];
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

export function packageKey(
  crypto: HsmCrypto,
  shared: Uint8Array,
  fleetId: Uint8Array,
  creator: number,
  member: number,
): Uint8Array {
  return crypto.hkdf(
    shared,
    fleetId,
    new Writer().fixed(utf8("bkv genesis v1")).u8(creator).u8(member).finish(),
    32,
  );
}

function header(p: Omit<GenesisPackage, "nonce" | "ciphertext">): Uint8Array {
  return new Writer()
    .fixed(MAGIC)
    .u8(VERSION)
    .fixed(p.fleetId)
    .u8(p.creator)
    .u8(p.member)
    .list(p.members, (w, m) => {
      w.fixed(m);
    })
    .finish();
}

export function packageAad(p: Omit<GenesisPackage, "nonce" | "ciphertext">): Uint8Array {
  return header(p);
}

export function encodePackage(p: GenesisPackage): Uint8Array {
  return new Writer().fixed(header(p)).fixed(p.nonce).bytes(p.ciphertext).finish();
}

export function decodePackage(b: Uint8Array): GenesisPackage {
  const r = new Reader(b, "genesis package");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === MAGIC[i]) && r.u8("version") === VERSION,
    "genesis package: wrong magic or version",
  );
  const fleetId = r.fixed(16, "fleet id");
  const creator = r.u8("creator");
  const member = r.u8("member");
  const members = r.list("members", 9, (r) => r.fixed(32, "member key"));
  check(members.length >= 1 && creator >= 1 && creator <= members.length, "genesis package: bad creator");
  check(member >= 1 && member <= members.length, "genesis package: bad member");
  const nonce = r.fixed(12, "nonce");
  const ciphertext = r.bytes("ciphertext", 1 << 16);
  r.end();
  return { fleetId, creator, member, members, nonce, ciphertext };
}

/** Check an opened genesis entry against its package header. */
export function checkGenesisEntry(bytes: Uint8Array, p: GenesisPackage): Entry {
  const e = decodeEntry(bytes);
  const op = e.ops[0];
  check(
    e.index === 1 && e.term === 0 && e.ops.length === 1 && op?.op === "genesis",
    "genesis package: not a genesis entry",
  );
  check(bytesEqual(e.prevHash, new Uint8Array(32)), "genesis package: genesis must start the chain");
  const g = op.genesis;
  check(bytesEqual(g.fleetId, p.fleetId), "genesis package: fleet id differs from its header");
  check(
    g.members.length === p.members.length && g.members.every((m, i) => bytesEqual(m, p.members[i]!)),
    "genesis package: members differ from its header",
  );
  return e;
}
