/**
 * Messages between the HSMs of a fleet, inside the authenticated peer channel (peer-channel.ts):
 * Raft (append, vote, snapshot) and request forwarding from followers to the leader.
 */
import { check, Reader, Writer } from "@bkv/wire";

export interface WireEntry {
  index: number;
  term: number;
  /** The encoded log entry (raft-entry.ts); it carries its own index, term and previous hash. */
  bytes: Uint8Array;
}

export type PeerMessage =
  | {
      type: "app";
      term: number;
      prevIndex: number;
      prevTerm: number;
      prevHash: Uint8Array;
      entries: WireEntry[];
      commit: number;
    }
  /**
   * success: index is the follower's match index. Failure: index is the prevIndex of the append it
   * answers (so the leader can tell a stale rejection), hint is where the follower's log may match
   * (its last index, or one before the entry that did not match).
   */
  | { type: "app-resp"; term: number; success: boolean; index: number; hint: number }
  | { type: "vote"; term: number; lastIndex: number; lastTerm: number; pre: boolean }
  | { type: "vote-resp"; term: number; granted: boolean; pre: boolean }
  | {
      type: "snap";
      term: number;
      index: number;
      snapTerm: number;
      hash: Uint8Array;
      state: Uint8Array;
      commit: number;
    }
  | { type: "fwd"; id: number; envelope: Uint8Array }
  | { type: "fwd-resp"; id: number; ok: true; envelope: Uint8Array }
  | { type: "fwd-resp"; id: number; ok: false; code: string; message: string };

const TAG = { app: 1, "app-resp": 2, vote: 3, "vote-resp": 4, snap: 5, fwd: 6, "fwd-resp": 7 } as const;
const MAX_ENTRIES = 10_000;

export function encodePeerMessage(m: PeerMessage): Uint8Array {
  const w = new Writer().u8(TAG[m.type]);
  switch (m.type) {
    case "app":
      w.u64(m.term).u64(m.prevIndex).u64(m.prevTerm).fixed(m.prevHash);
      w.list(m.entries, (w, e) => {
        w.u64(e.index).u64(e.term).bytes(e.bytes);
      });
      w.u64(m.commit);
      break;
    case "app-resp":
      w.u64(m.term)
        .u8(m.success ? 1 : 0)
        .u64(m.index)
        .u64(m.hint);
      break;
    case "vote":
      w.u64(m.term)
        .u64(m.lastIndex)
        .u64(m.lastTerm)
        .u8(m.pre ? 1 : 0);
      break;
    case "vote-resp":
      w.u64(m.term)
        .u8(m.granted ? 1 : 0)
        .u8(m.pre ? 1 : 0);
      break;
    case "snap":
      w.u64(m.term).u64(m.index).u64(m.snapTerm).fixed(m.hash).bytes(m.state).u64(m.commit);
      break;
    case "fwd":
      w.u64(m.id).bytes(m.envelope);
      break;
    case "fwd-resp":
      w.u64(m.id);
      if (m.ok) w.u8(1).bytes(m.envelope);
      else w.u8(0).string(m.code).string(m.message);
      break;
  }
  return w.finish();
}

function flag(r: Reader, field: string): boolean {
  const v = r.u8(field);
  check(v <= 1, `peer message: bad ${field}`);
  return v === 1;
}

export function decodePeerMessage(b: Uint8Array): PeerMessage {
  const r = new Reader(b, "peer message");
  const tag = r.u8("type");
  let m: PeerMessage;
  switch (tag) {
    case TAG.app: {
      const term = r.u64("term");
      const prevIndex = r.u64("prev index");
      const prevTerm = r.u64("prev term");
      const prevHash = r.fixed(32, "prev hash");
      const entries = r.list("entries", MAX_ENTRIES, (r) => ({
        index: r.u64("index"),
        term: r.u64("term"),
        bytes: r.bytes("entry", 1 << 20),
      }));
      m = { type: "app", term, prevIndex, prevTerm, prevHash, entries, commit: r.u64("commit") };
      break;
    }
    case TAG["app-resp"]:
      m = {
        type: "app-resp",
        term: r.u64("term"),
        success: flag(r, "success"),
        index: r.u64("index"),
        hint: r.u64("hint"),
      };
      break;
    case TAG.vote:
      m = {
        type: "vote",
        term: r.u64("term"),
        lastIndex: r.u64("last index"),
        lastTerm: r.u64("last term"),
        pre: flag(r, "pre"),
      };
      break;
    case TAG["vote-resp"]:
      m = { type: "vote-resp", term: r.u64("term"), granted: flag(r, "granted"), pre: flag(r, "pre") };
      break;
    case TAG.snap:
      m = {
        type: "snap",
        term: r.u64("term"),
        index: r.u64("index"),
        snapTerm: r.u64("snapshot term"),
        hash: r.fixed(32, "hash"),
        state: r.bytes("state", 1 << 30),
        commit: r.u64("commit"),
      };
      break;
    case TAG.fwd:
      m = { type: "fwd", id: r.u64("id"), envelope: r.bytes("envelope", 8192) };
      break;
    case TAG["fwd-resp"]: {
      const id = r.u64("id");
      m = flag(r, "ok")
        ? { type: "fwd-resp", id, ok: true, envelope: r.bytes("envelope", 8192) }
        : { type: "fwd-resp", id, ok: false, code: r.string("code"), message: r.string("message", 4096) };
      break;
    }
    default:
      check(false, `peer message: unknown type ${tag}`);
  }
  r.end();
  return m;
}
