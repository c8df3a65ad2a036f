/**
 * The HSM's NVRAM record, about two hundred bytes the host can neither read, write nor roll back.
 * It is what makes host storage checkable: whatever the host hands the HSM at boot must reach the
 * tip recorded here, or the HSM knows an old copy was restored.
 *
 * - term and vote: Raft's hard state.
 * - epoch: the boot epoch, one more at every boot, so the peer channel's nonces and replay windows
 *   are new after every restart of either end (peer-channel.ts).
 * - tip: the durable tip of this HSM's log (index, term, chain hash): the host confirmed everything
 *   up to it as stored, and only then does the HSM acknowledge it. It is lowered only by Raft
 *   truncating conflicting, uncommitted entries at a leader's word.
 * - recover: set when host storage was found behind what this HSM had acknowledged (its tip). Until
 *   this HSM's own durable log reaches it again and a leader has committed past it, the HSM neither
 *   campaigns nor serves, and it votes only for a candidate whose log is at least as up to date as
 *   this tip. It lives here, not in memory, so that letting a few genuine entries through and
 *   restarting the HSM does not clear it.
 * - ceremony: the one genesis this HSM takes part in during its life ("creator" or "joiner" of fleet
 *   X), recorded before it signs or seals anything for that fleet.
 */
import { check, Reader, utf8, Writer } from "@bkv/wire";

const MAGIC = utf8("BKVN");
const VERSION = 3;

export interface LogTip {
  index: number;
  term: number;
  hash: Uint8Array;
}

export type CeremonyRole = "none" | "creator" | "joiner";

export interface NvramState {
  term: number;
  vote: number;
  epoch: number;
  tip: LogTip;
  recover: LogTip | null;
  ceremony: { role: CeremonyRole; fleetId: Uint8Array };
}

const ROLES: CeremonyRole[] = ["none", "creator", "joiner"];
const FLEET_ID_BYTES = 16;

export function emptyTip(): LogTip {
  return { index: 0, term: 0, hash: new Uint8Array(32) };
}

/** Raft's order of logs by their last entry: later term first, then longer. */
export function tipAtLeast(a: LogTip, b: LogTip): boolean {
  return a.term > b.term || (a.term === b.term && a.index >= b.index);
}

function writeTip(w: Writer, t: LogTip): Writer {
  return w.u64(t.index).u64(t.term).fixed(t.hash);
}

function readTip(r: Reader, what: string): LogTip {
  return { index: r.u64(`${what} index`), term: r.u64(`${what} term`), hash: r.fixed(32, `${what} hash`) };
}

export function encodeNvram(s: NvramState): Uint8Array {
  const w = new Writer().fixed(MAGIC).u8(VERSION).u64(s.term).u8(s.vote).u32(s.epoch);
  writeTip(w, s.tip);
  if (s.recover === null) w.u8(0);
  else writeTip(w.u8(1), s.recover);
  check(s.ceremony.fleetId.length === FLEET_ID_BYTES, "NVRAM: a fleet id is 16 bytes");
  w.u8(ROLES.indexOf(s.ceremony.role)).fixed(s.ceremony.fleetId);
  return w.finish();
}

export function decodeNvram(b: Uint8Array): NvramState {
  const r = new Reader(b, "NVRAM");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === MAGIC[i]),
    "NVRAM: wrong magic",
  );
  check(r.u8("version") === VERSION, "NVRAM: unknown version");
  const term = r.u64("term");
  const vote = r.u8("vote");
  const epoch = r.u32("epoch");
  const tip = readTip(r, "tip");
  const flag = r.u8("recover flag");
  check(flag <= 1, "NVRAM: bad recover flag");
  const recover = flag === 1 ? readTip(r, "recover") : null;
  const role = ROLES[r.u8("ceremony role")];
  check(role !== undefined, "NVRAM: unknown ceremony role");
  const fleetId = r.fixed(FLEET_ID_BYTES, "ceremony fleet id");
  r.end();
  return { term, vote, epoch, tip, recover, ceremony: { role, fleetId } };
}
