/**
 * The authenticated channel between the HSMs of a fleet. Each direction between two members has its
 * own AES-256-GCM key, derived from the P-256 agreement of their identity keys and bound to the
 * fleet id, so only a member can send as itself and only within this fleet.
 *
 * Every message is bound to the boot epochs of both ends (NVRAM, one more at every boot): the header
 * names the sender's epoch and the epoch of the receiver it is meant for, and both are authenticated.
 * The nonce is (sender's epoch, counter), so it never repeats under one key. The receiver refuses a
 * message meant for another of its boots, and keeps a window of counters per sender and epoch, so a
 * message recorded at any time is refused after either end restarts, and within one boot pair it is
 * accepted once. Reordering within the window is allowed (Raft copes with it).
 *
 * A sender learns the receiver's epoch from the receiver's messages. A `hello` carries nothing but
 * the sender's epoch and is accepted whatever receiver epoch it names: each member says hello to
 * every peer when it boots, and again to a peer that addressed an older boot of it.
 */
import { check, Reader, utf8, Writer } from "@bkv/wire";
import type { HsmCrypto } from "./platform.js";

const MAGIC = utf8("BKVP");
const VERSION = 2;
const KIND_MESSAGE = 1;
const KIND_HELLO = 2;
/** magic, version, kind, from, to, receiver epoch, then the nonce: sender epoch, counter. */
const HEADER = 4 + 1 + 1 + 1 + 1 + 4 + 4 + 8;
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

export interface Opened {
  from: number;
  /** The sender's boot epoch. */
  epoch: number;
  /** null for a hello. */
  plaintext: Uint8Array | null;
}

export class PeerChannel {
  private seq = 0;
  private windows = new Map<number, Window>();
  /** The newest boot epoch seen from each peer (authenticated); 0 while unknown. */
  private peerEpochs = new Map<number, number>();
  /** Peers that addressed an older boot of this HSM, or do not know it yet: say hello to them. */
  readonly helloDue = new Set<number>();
  readonly counters = { forged: 0, replayed: 0 };

  constructor(
    private readonly crypto: HsmCrypto,
    private readonly self: number,
    private readonly epoch: number,
    /** Keys by peer: send = self->peer, recv = peer->self. */
    private readonly keys: Map<number, { send: Uint8Array; recv: Uint8Array }>,
  ) {
    for (const p of keys.keys()) this.helloDue.add(p);
  }

  /** The peer's boot epoch as last heard, or 0 if this HSM has not heard from it in this boot. */
  peerEpoch(peer: number): number {
    return this.peerEpochs.get(peer) ?? 0;
  }

  /** A message for peer `to`, bound to its boot epoch as last heard (null: say hello first). */
  async seal(to: number, plaintext: Uint8Array): Promise<Uint8Array | null> {
    const peerEpoch = this.peerEpoch(to);
    if (peerEpoch === 0) {
      this.helloDue.add(to);
      return null;
    }
    return this.sealKind(to, KIND_MESSAGE, peerEpoch, plaintext);
  }

  /** A hello to peer `to`: this HSM's boot epoch. */
  hello(to: number): Promise<Uint8Array> {
    return this.sealKind(to, KIND_HELLO, this.peerEpoch(to), new Uint8Array(0));
  }

  private async sealKind(
    to: number,
    kind: number,
    peerEpoch: number,
    plaintext: Uint8Array,
  ): Promise<Uint8Array> {
    const k = this.keys.get(to);
    if (k === undefined) throw new Error(`no peer ${to}`);
    this.seq += 1;
    const header = new Writer()
      .fixed(MAGIC)
      .u8(VERSION)
      .u8(kind)
      .u8(this.self)
      .u8(to)
      .u32(peerEpoch)
      .u32(this.epoch)
      .u64(this.seq)
      .finish();
    const nonce = header.subarray(HEADER - 12);
    const ct = await this.crypto.aeadSeal(k.send, nonce, plaintext, header);
    return new Writer().fixed(header).fixed(ct).finish();
  }

  /** The sender, its epoch and the plaintext, or null (counted) if forged, misdirected or replayed. */
  async open(bytes: Uint8Array): Promise<Opened | null> {
    let kind: number;
    let from: number;
    let forEpoch: number;
    let epoch: number;
    let seq: number;
    try {
      const r = new Reader(bytes.subarray(0, HEADER), "peer message header");
      const magic = r.fixed(4, "magic");
      check(magic.every((x, i) => x === MAGIC[i]) && r.u8("version") === VERSION, "peer message: bad magic");
      kind = r.u8("kind");
      check(kind === KIND_MESSAGE || kind === KIND_HELLO, "peer message: unknown kind");
      from = r.u8("from");
      check(r.u8("to") === this.self, "peer message: not for this HSM");
      forEpoch = r.u32("receiver epoch");
      epoch = r.u32("sender epoch");
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
    // Only authentic messages get this far, so a forger can move neither epochs nor windows.
    if (epoch > this.peerEpoch(from)) this.peerEpochs.set(from, epoch);
    if (forEpoch !== this.epoch) this.helloDue.add(from);
    if (kind === KIND_HELLO) return plaintext.length === 0 ? { from, epoch, plaintext: null } : null;
    if (forEpoch !== this.epoch) {
      // Meant for an earlier boot of this HSM (recorded and replayed, or sent before the sender
      // heard of this boot).
      this.counters.replayed++;
      return null;
    }
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
    return { from, epoch, plaintext };
  }
}
