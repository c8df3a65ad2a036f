/**
 * The HSM's NVRAM record: the last committed index and its chain hash. The host can neither read
 * nor roll it back, so it pins how far the log must reach when the HSM boots from host storage.
 */
import { check, Reader, utf8, Writer } from "@bkv/wire";

const MAGIC = utf8("BKVN");

export interface NvramState {
  commitIndex: number;
  chainHash: Uint8Array;
}

export function encodeNvram(s: NvramState): Uint8Array {
  return new Writer().fixed(MAGIC).u8(1).u64(s.commitIndex).fixed(s.chainHash).finish();
}

export function decodeNvram(b: Uint8Array): NvramState {
  const r = new Reader(b, "NVRAM");
  const magic = r.fixed(4, "magic");
  check(
    magic.every((x, i) => x === MAGIC[i]),
    "NVRAM: wrong magic",
  );
  check(r.u8("version") === 1, "NVRAM: unknown version");
  const s = { commitIndex: r.u64("commit index"), chainHash: r.fixed(32, "chain hash") };
  r.end();
  return s;
}
