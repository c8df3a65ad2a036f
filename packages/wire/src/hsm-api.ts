/**
 * The HSM API: the only contract between the untrusted host agent and the HSM core. Frames are
 * bytes in, bytes out, so the same core runs in a child process, in a simulator or inside a real
 * HSM. The host is the adversary: the core decodes every frame strictly and trusts nothing in it
 * beyond what it can authenticate (sealed blobs it made itself, HPKE-sealed client requests).
 *
 * Flow: Boot -> (Persist -> Persisted)* -> Booted; then Client frames, answered by Persist frames
 * for the new log entries; once the host has stored them durably it sends Persisted, and the core
 * releases the Reply frames of the entries now committed.
 */
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";

export interface SealedEntry {
  index: number;
  sealed: Uint8Array;
}

export type HostToHsm =
  /** Everything the host stored for this HSM: its newest snapshot (if any) and the entries after it. */
  /** guessLimit is used only at genesis (empty storage and NVRAM); afterwards the log's value holds. */
  | { type: "boot"; snapshot: SealedEntry | null; entries: SealedEntry[]; guessLimit: number }
  /** A client's request envelope; tag is the host's handle for matching the Reply. */
  | { type: "client"; tag: number; envelope: Uint8Array }
  /** The host has durably stored every entry and snapshot up to this index. */
  | { type: "persisted"; index: number }
  | { type: "status" };

export type HsmToHost =
  | { type: "booted"; commitIndex: number; vaultPublicKey: Uint8Array; guessesAllowed: number }
  /** The core refuses to go on; code is a stable ErrorCode (ROLLBACK, CORRUPT). */
  | { type: "failed"; code: string; message: string }
  /** Store these durably, then answer Persisted. deleteBefore: entries below it may be dropped. */
  | { type: "persist"; entries: SealedEntry[]; snapshot: SealedEntry | null }
  /** ok: envelope is a sealed response for the client; rejected: cleartext error (no secrets). */
  | { type: "reply"; tag: number; ok: true; envelope: Uint8Array }
  | { type: "reply"; tag: number; ok: false; code: string; message: string }
  | { type: "status"; booted: boolean; commitIndex: number; pendingEntries: number };

const MAX_FRAME_ENTRIES = 100_000;
const MAX_BLOB = 64 << 20;

const HOST_TAG = { boot: 1, client: 2, persisted: 3, status: 4 } as const;
const HSM_TAG = { booted: 1, failed: 2, persist: 3, reply: 4, status: 5 } as const;

function writeEntry(w: Writer, e: SealedEntry): void {
  w.u64(e.index).bytes(e.sealed);
}

function readEntry(r: Reader): SealedEntry {
  return { index: r.u64("entry index"), sealed: r.bytes("sealed entry", MAX_BLOB) };
}

function writeOptEntry(w: Writer, e: SealedEntry | null): void {
  if (e === null) w.u8(0);
  else writeEntry(w.u8(1), e);
}

function readOptEntry(r: Reader): SealedEntry | null {
  const has = r.u8("snapshot flag");
  check(has <= 1, "HSM frame: bad snapshot flag");
  return has === 1 ? readEntry(r) : null;
}

export function encodeHostToHsm(m: HostToHsm): Uint8Array {
  const w = new Writer().u8(HOST_TAG[m.type]);
  switch (m.type) {
    case "boot":
      writeOptEntry(w, m.snapshot);
      w.list(m.entries, writeEntry);
      w.u32(m.guessLimit);
      break;
    case "client":
      w.u32(m.tag).bytes(m.envelope);
      break;
    case "persisted":
      w.u64(m.index);
      break;
    case "status":
      break;
  }
  return w.finish();
}

export function decodeHostToHsm(b: Uint8Array): HostToHsm {
  const r = new Reader(b, "host frame");
  const tag = r.u8("frame type");
  let m: HostToHsm;
  switch (tag) {
    case HOST_TAG.boot:
      m = {
        type: "boot",
        snapshot: readOptEntry(r),
        entries: r.list("entries", MAX_FRAME_ENTRIES, readEntry),
        guessLimit: r.u32("guess limit"),
      };
      break;
    case HOST_TAG.client:
      m = { type: "client", tag: r.u32("tag"), envelope: r.bytes("envelope", 8192) };
      break;
    case HOST_TAG.persisted:
      m = { type: "persisted", index: r.u64("index") };
      break;
    case HOST_TAG.status:
      m = { type: "status" };
      break;
    default:
      check(false, `host frame: unknown type ${tag}`);
  }
  r.end();
  return m;
}

export function encodeHsmToHost(m: HsmToHost): Uint8Array {
  const w = new Writer().u8(HSM_TAG[m.type]);
  switch (m.type) {
    case "booted":
      w.u64(m.commitIndex).bytes(m.vaultPublicKey).u32(m.guessesAllowed);
      break;
    case "failed":
      w.string(m.code).string(m.message);
      break;
    case "persist":
      w.list(m.entries, writeEntry);
      writeOptEntry(w, m.snapshot);
      break;
    case "reply":
      w.u32(m.tag);
      if (m.ok) w.u8(1).bytes(m.envelope);
      else w.u8(0).string(m.code).string(m.message);
      break;
    case "status":
      w.u8(m.booted ? 1 : 0)
        .u64(m.commitIndex)
        .u32(m.pendingEntries);
      break;
  }
  return w.finish();
}

export function decodeHsmToHost(b: Uint8Array): HsmToHost {
  const r = new Reader(b, "HSM frame");
  const tag = r.u8("frame type");
  let m: HsmToHost;
  switch (tag) {
    case HSM_TAG.booted:
      m = {
        type: "booted",
        commitIndex: r.u64("commit index"),
        vaultPublicKey: r.bytes("vault key", 256),
        guessesAllowed: r.u32("guesses allowed"),
      };
      break;
    case HSM_TAG.failed:
      m = { type: "failed", code: r.string("code"), message: r.string("message", 4096) };
      break;
    case HSM_TAG.persist:
      m = {
        type: "persist",
        entries: r.list("entries", MAX_FRAME_ENTRIES, readEntry),
        snapshot: readOptEntry(r),
      };
      break;
    case HSM_TAG.reply: {
      const t = r.u32("tag");
      const ok = r.u8("ok flag");
      check(ok <= 1, "HSM frame: bad ok flag");
      m =
        ok === 1
          ? { type: "reply", tag: t, ok: true, envelope: r.bytes("envelope", 8192) }
          : { type: "reply", tag: t, ok: false, code: r.string("code"), message: r.string("message", 4096) };
      break;
    }
    case HSM_TAG.status:
      m = {
        type: "status",
        booted: r.u8("booted") === 1,
        commitIndex: r.u64("commit index"),
        pendingEntries: r.u32("pending"),
      };
      break;
    default:
      check(false, `HSM frame: unknown type ${tag}`);
  }
  r.end();
  return m;
}
