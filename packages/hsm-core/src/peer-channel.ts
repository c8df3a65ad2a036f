/**
 * The authenticated channel between the HSMs of a fleet. Each direction between two members has its
 * own AES-256-GCM key, derived from the X25519 agreement of their identity keys and bound to the
 * fleet id, so only a member can send as itself and only within this fleet. The nonce is the
 * sender's boot epoch (from NVRAM, new after every restart) and a counter; the receiver keeps a
 * window of counters per sender and epoch, so a host that replays, or forges, a message has it
 * refused and counted. Reordering within the window is allowed (Raft copes with it).
 */
import { check, Reader, utf8, Writer } from "@bkv/wire";
import type { HsmCrypto } from "./platform.js";

const MAGIC = utf8("BKVP");
const VERSION = 1;
const HEADER = 4 + 1 + 1 + 1 + 4 + 8;
const WINDOW = 4096;

export function peerKey(
  crypto: HsmCrypto,
  shared: Uint8Array,
  fleetId: Uint8Array,
  from: number,
  to: number,
): Uint8Array {
  return crypto.hkdf(shared, fleetId, new Writer().fixed(utf8("bkv peer v1")).u8(from).u8(to).finish(), 32);
}

interface Window {
  epoch: number;
  max: number;
  seen: Set<number>;
}

export class PeerChannel {
  private seq = 0;
  private windows = new Map<number, Window>();
  readonly counters = { forged: 0, replayed: 0 };

  constructor(
    private readonly crypto: HsmCrypto,
    private readonly self: number,
    private readonly epoch: number,
    /** Keys by peer: send = self->peer, recv = peer->self. */
    private readonly keys: Map<number, { send: Uint8Array; recv: Uint8Array }>,
  ) {}

  async seal(to: number, plaintext: Uint8Array): Promise<Uint8Array> {
    const k = this.keys.get(to);
    if (k === undefined) throw new Error(`no peer ${to}`);
    this.seq += 1;
    const header = new Writer()
      .fixed(MAGIC)
      .u8(VERSION)
      .u8(this.self)
      .u8(to)
      .u32(this.epoch)
      .u64(this.seq)
      .finish();
    const nonce = header.subarray(HEADER - 12);
    const ct = await this.crypto.aeadSeal(k.send, nonce, plaintext, header);
    return new Writer().fixed(header).fixed(ct).finish();
  }

  /** The sender and plaintext, or null (counted) if forged, misdirected or replayed. */
  async open(bytes: Uint8Array): Promise<{ from: number; plaintext: Uint8Array } | null> {
    let from: number;
    let epoch: number;
    let seq: number;
    try {
      const r = new Reader(bytes.subarray(0, HEADER), "peer message header");
      const magic = r.fixed(4, "magic");
      check(magic.every((x, i) => x === MAGIC[i]) && r.u8("version") === VERSION, "peer message: bad magic");
      from = r.u8("from");
      check(r.u8("to") === this.self, "peer message: not for this HSM");
      epoch = r.u32("epoch");
      seq = r.u64("seq");
    } catch {
      this.counters.forged++;
      return null;
    }
    const k = this.keys.get(from);
    if (k === undefined || bytes.length < HEADER + 16) {
      this.counters.forged++;
      return null;
    }
    const header = bytes.subarray(0, HEADER);
    let plaintext: Uint8Array;
    try {
      plaintext = await this.crypto.aeadOpen(
        k.recv,
        header.subarray(HEADER - 12),
        bytes.subarray(HEADER),
        header,
      );
    } catch {
      this.counters.forged++;
      return null;
    }
    // Only authentic messages reach the replay window, so a forger cannot move it.
    let w = this.windows.get(from);
    if (w === undefined || epoch > w.epoch) {
      w = { epoch, max: 0, seen: new Set() };
      this.windows.set(from, w);
    }
    if (epoch < w.epoch || seq <= w.max - WINDOW || w.seen.has(seq)) {
      this.counters.replayed++;
      return null;
    }
    w.seen.add(seq);
    if (seq > w.max) w.max = seq;
    if (w.seen.size > 2 * WINDOW) for (const s of w.seen) if (s <= w.max - WINDOW) w.seen.delete(s);
    return { from, plaintext };
  }
}
