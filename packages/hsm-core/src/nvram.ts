/**
 * The HSM's NVRAM record, a few dozen bytes the host can neither read, write nor roll back: Raft's
 * term and vote, the boot epoch (fresh nonces for the peer channel after every restart), and the
 * durable log tip this HSM has acknowledged (index and chain hash). At boot, host storage must reach
 * that tip, or the HSM knows an old copy was restored.
 */
import { check, Reader, utf8, Writer } from "@bkv/wire";

const MAGIC = utf8("BKVN");
const VERSION = 2;

export interface NvramState {
  term: number;
  vote: number;
  epoch: number;
  durableIndex: number;
  durableHash: Uint8Array;
}

export function encodeNvram(s: NvramState): Uint8Array {
  return new Writer()
    .fixed(MAGIC)
    .u8(VERSION)
    .u64(s.term)
    .u8(s.vote)
    .u32(s.epoch)
    .u64(s.durableIndex)
    .fixed(s.durableHash)
    .finish();
}

export function decodeNvram(b: Uint8Array): NvramState {
  const r = new Reader(b, "NVRAM");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === MAGIC[i]),
    "NVRAM: wrong magic",
  );
  check(r.u8("version") === VERSION, "NVRAM: unknown version");
  const s = {
    term: r.u64("term"),
    vote: r.u8("vote"),
    epoch: r.u32("epoch"),
    durableIndex: r.u64("durable index"),
    durableHash: r.fixed(32, "durable hash"),
  };
  r.end();
  return s;
}
