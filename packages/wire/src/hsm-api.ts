/**
 * The HSM API: the only contract between the untrusted host agent and the HSM core. Frames are
 * bytes in, bytes out, so the same core runs in a child process, in a simulator or inside a real
 * HSM. The host is the adversary: the core decodes every frame strictly and trusts nothing in it
 * beyond what it can authenticate (sealed blobs it made itself, HPKE-sealed client requests, peer
 * messages under keys agreed with the fleet's members).
 *
 * Life of an HSM: Boot (host storage) -> Booted. Uninitialized HSMs take part in a genesis
 * ceremony (GenesisCreate on one; GenesisJoin, then GenesisFinish on all). Members then run Raft: the host relays Peer
 * frames between HSMs, sends Tick frames on a timer, stores what Persist frames hand it and answers
 * Persisted; client replies leave only once their log entry is committed.
 */
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";
import { MAX_FRAME_BYTES } from "./framing.js";
import { MAX_WITNESS_NAME_BYTES, MAX_WITNESSES, type WitnessPolicy } from "./genesis-statement.js";

export interface SealedEntry {
  index: number;
  sealed: Uint8Array;
}

export interface HsmStatus {
  node: number;
  role: string;
  term: number;
  leader: number;
  commitIndex: number;
  durableIndex: number;
  recovering: boolean;
  /** While recovering: the index it acknowledged before the rollback and must reach again; else 0. */
  recoverUntil: number;
  peerForged: number;
  peerReplayed: number;
  /** Frames from the host the HSM refused: oversized (skipped unread) or undecodable. */
  framesRejected: number;
}

/** Upper bounds (ms) of the NVRAM write latency buckets in HsmStats; one more bucket holds the rest. */
export const NVRAM_WRITE_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 1000] as const;

/**
 * What the HSM reports for the host's metrics (the Stats frame): counts only, never a user id, a
 * request or a secret. Decisions are counted as this HSM applies committed log entries (since its
 * process started; a snapshot installed from the leader is not counted), so every member reports
 * the fleet's decisions.
 */
export interface HsmStats {
  /** Recover-starts that spent a guess. */
  guessesStarted: number;
  /** Recover-finishes with a wrong PIN. */
  guessesWrong: number;
  /** Recover-finishes with the right PIN that released the key (a delete counts only as destroyed). */
  guessesRight: number;
  /** Records destroyed: every guess used, or deleted by their user. */
  recordsDestroyed: number;
  /** NVRAM writes since the process started and their total duration (ms, the platform's clock). */
  nvramWrites: number;
  nvramWriteMs: number;
  /** NVRAM writes per latency bucket (NVRAM_WRITE_BUCKETS_MS, then the rest): not cumulative. */
  nvramWriteBuckets: number[];
  /** The last index of this HSM's log. */
  lastIndex: number;
  /** On the leader: each other member's match index (its durable log as the leader knows it). */
  peers: { node: number; match: number }[];
}

export type HostToHsm =
  /** Everything the host stored for this HSM: its newest snapshot (if any) and the entries after it. */
  | { type: "boot"; snapshot: SealedEntry | null; entries: SealedEntry[] }
  /** A client's request envelope; tag is the host's handle for matching the Reply. */
  | { type: "client"; tag: number; envelope: Uint8Array }
  /** The host has durably stored everything of the Persist frame with this id. */
  | { type: "persisted"; id: number }
  | { type: "status" }
  /** Ask for the counts of HsmStats. */
  | { type: "stats" }
  /**
   * Time passes: ticks (at least 1) of the host's tick interval since the last Tick frame. The host
   * may hold ticks back until the HSM's Wake tick, or until it has another frame to send (it sends
   * the ticks owed first), so several can arrive in one frame; the HSM acts on them as on one late
   * tick (at most one heartbeat, one election timeout).
   */
  | { type: "tick"; ticks: number }
  /** A message from another HSM of the fleet, as relayed by the hosts (from is only a hint). */
  | { type: "peer"; from: number; bytes: Uint8Array }
  /**
   * Genesis: check every member's attestation (encoded, as each HSM's Booted reported it), create
   * the fleet secrets, seal them to each member, and draft the genesis statement. challenges[i] is
   * member i + 1's challenge from its Booted frame; each member's package answers its own.
   * namespace, epoch and logKey (the transparency log's raw 32-byte Ed25519 key) say where the
   * fleet is published; genesis freezes them, and the fleet counter-signs nothing else. releaseKey
   * (raw 32-byte Ed25519) is the key accepted code is released under and maxSuccessorGuessLimit
   * (1 to guessLimit) the highest guess limit of a successor: genesis freezes both for the
   * fleet's check of its successor (docs/migration.md §2), and so does witnessPolicy: the log's
   * witnesses (names, raw 32-byte cosignature/v1 keys) and how many must cosign a checkpoint.
   */
  | {
      type: "genesis-create";
      members: Uint8Array[];
      challenges: Uint8Array[];
      guessLimit: number;
      namespace: string;
      epoch: number;
      logKey: Uint8Array;
      releaseKey: Uint8Array;
      maxSuccessorGuessLimit: number;
      witnessPolicy: WitnessPolicy;
    }
  /** Genesis: open the package sealed to this HSM, check the statement against it, and sign it. */
  | { type: "genesis-join"; package: Uint8Array; statement: Uint8Array }
  /** Genesis: every member's signature over the statement; with all of them, store the genesis entry. */
  | { type: "genesis-finish"; signatures: Uint8Array[] }
  /**
   * Counter-sign a validation bundle: the HSM checks that the artifact describes its own fleet (its
   * namespace and epoch included), that the log key frozen at genesis signed it (logSignature over
   * logBundleMessage), and that its validity window is at most MAX_ARTIFACT_VALIDITY_MS; then it
   * signs countersignMessage(namespace, epoch, SHA-256(artifact), logSignature) with the fleet
   * signing key (tag matches the answer).
   */
  | { type: "countersign"; tag: number; artifact: Uint8Array; logSignature: Uint8Array };

export type HsmToHost =
  | {
      type: "booted";
      /** This HSM's attestation (encoded, see attestation.ts). */
      identity: Uint8Array;
      /** 0 while uninitialized (no fleet yet). */
      node: number;
      fleetId: Uint8Array;
      vaultPublicKey: Uint8Array;
      guessesAllowed: number;
      recovering: boolean;
      /**
       * While uninitialized: a fresh random challenge for genesis, made at this boot and held only in
       * memory (a restart makes a new one). The genesis package this HSM joins with must answer it.
       * Empty otherwise.
       */
      challenge: Uint8Array;
    }
  /** The core refuses to go on; code is a stable ErrorCode (CORRUPT, INVALID). */
  | { type: "failed"; code: string; message: string }
  /** Store these durably (first deleting stored entries from truncateFrom on), then answer Persisted. */
  | {
      type: "persist";
      id: number;
      entries: SealedEntry[];
      snapshot: SealedEntry | null;
      truncateFrom: number | null;
    }
  /** ok: envelope is a sealed response for the client; rejected: cleartext error (no secrets). */
  | { type: "reply"; tag: number; ok: true; envelope: Uint8Array }
  | { type: "reply"; tag: number; ok: false; code: string; message: string }
  | ({ type: "status" } & HsmStatus)
  | ({ type: "stats" } & HsmStats)
  /** Send to another HSM of the fleet. */
  | { type: "peer"; to: number; bytes: Uint8Array }
  /**
   * The HSM has nothing to do on its own before its tick count (ticks received since it booted)
   * reaches tick: the host may send no Tick frame before then. Only a hint for the host's timer; a
   * host that sends ticks sooner, later or not at all changes nothing it could not change before.
   */
  | { type: "wake"; tick: number }
  /** The drafted genesis statement and one sealed package per member (node i gets packages[i - 1]). */
  | { type: "genesis-packages"; statement: Uint8Array; packages: Uint8Array[] }
  /** This member's Ed25519 signature over the genesis statement. */
  | { type: "genesis-signature"; signature: Uint8Array }
  | { type: "countersignature"; tag: number; ok: true; signature: Uint8Array }
  | { type: "countersignature"; tag: number; ok: false; code: string; message: string };

const MAX_FRAME_ENTRIES = 100_000;
/** The biggest byte string inside an HSM API frame (a peer message, a sealed entry or snapshot). */
export const MAX_BLOB = 64 << 20;

/**
 * The biggest peer message a host accepts from another host and forwards to its HSM (the payload of
 * one frame on the peer port). Frame caps agree end to end: wrapped in a Peer frame of the HSM API
 * (PEER_FRAME_OVERHEAD more bytes) it is at most MAX_BLOB, and strictly below the cap the HSM process
 * reads (MAX_FRAME_BYTES), so a frame a host accepts is never one the HSM refuses for its size.
 */
export const MAX_PEER_MESSAGE_BYTES = MAX_BLOB;
/** Type tag (1), sender (1), length prefix of the bytes (4), and the frame's own length prefix (4). */
export const PEER_FRAME_OVERHEAD = 10;
check(
  MAX_PEER_MESSAGE_BYTES <= MAX_BLOB && MAX_PEER_MESSAGE_BYTES + PEER_FRAME_OVERHEAD < MAX_FRAME_BYTES,
  "frame caps disagree",
);

const HOST_TAG = {
  boot: 1,
  client: 2,
  persisted: 3,
  status: 4,
  tick: 5,
  peer: 6,
  "genesis-create": 7,
  "genesis-join": 8,
  "genesis-finish": 9,
  countersign: 10,
  stats: 11,
} as const;
/** The most ticks one Tick frame may carry (about 2 days of 50 ms ticks). */
export const MAX_TICKS_PER_FRAME = 1 << 22;
const HSM_TAG = {
  booted: 1,
  failed: 2,
  persist: 3,
  reply: 4,
  status: 5,
  peer: 6,
  "genesis-packages": 7,
  "genesis-signature": 8,
  countersignature: 9,
  stats: 10,
  wake: 11,
} as const;

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

function readFlag(r: Reader, field: string): boolean {
  const v = r.u8(field);
  check(v <= 1, `HSM frame: bad ${field}`);
  return v === 1;
}

function readOptEntry(r: Reader): SealedEntry | null {
  return readFlag(r, "snapshot flag") ? readEntry(r) : null;
}

export function encodeHostToHsm(m: HostToHsm): Uint8Array {
  const w = new Writer().u8(HOST_TAG[m.type]);
  switch (m.type) {
    case "boot":
      writeOptEntry(w, m.snapshot);
      w.list(m.entries, writeEntry);
      break;
    case "client":
      w.u32(m.tag).bytes(m.envelope);
      break;
    case "persisted":
      w.u32(m.id);
      break;
    case "status":
    case "stats":
      break;
    case "tick":
      w.u32(m.ticks);
      break;
    case "peer":
      w.u8(m.from).bytes(m.bytes);
      break;
    case "genesis-create":
      w.list(m.members, (w, k) => {
        w.bytes(k);
      });
      w.list(m.challenges, (w, c) => {
        w.bytes(c);
      });
      w.u32(m.guessLimit).string(m.namespace).u32(m.epoch).bytes(m.logKey);
      w.bytes(m.releaseKey).u32(m.maxSuccessorGuessLimit);
      w.list(m.witnessPolicy.witnesses, (w, x) => {
        w.string(x.name).bytes(x.key);
      }).u32(m.witnessPolicy.threshold);
      break;
    case "genesis-join":
      w.bytes(m.package).bytes(m.statement);
      break;
    case "genesis-finish":
      w.list(m.signatures, (w, sig) => {
        w.bytes(sig);
      });
      break;
    case "countersign":
      w.u32(m.tag).bytes(m.artifact).bytes(m.logSignature);
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
      };
      break;
    case HOST_TAG.client:
      m = { type: "client", tag: r.u32("tag"), envelope: r.bytes("envelope", 8192) };
      break;
    case HOST_TAG.persisted:
      m = { type: "persisted", id: r.u32("id") };
      break;
    case HOST_TAG.status:
      m = { type: "status" };
      break;
    case HOST_TAG.tick: {
      const ticks = r.u32("ticks");
      check(ticks >= 1 && ticks <= MAX_TICKS_PER_FRAME, `host frame: ${ticks} ticks in one frame`);
      m = { type: "tick", ticks };
      break;
    }
    case HOST_TAG.stats:
      m = { type: "stats" };
      break;
    case HOST_TAG.peer:
      m = { type: "peer", from: r.u8("from"), bytes: r.bytes("peer message", MAX_BLOB) };
      break;
    case HOST_TAG["genesis-create"]:
      m = {
        type: "genesis-create",
        members: r.list("members", 9, (r) => r.bytes("attestation", 4096)),
        challenges: r.list("challenges", 9, (r) => r.bytes("challenge", 64)),
        guessLimit: r.u32("guess limit"),
        // Loose caps here: the core refuses a bad namespace or log key by name (nothing stored).
        namespace: r.string("namespace", 1024),
        epoch: r.u32("epoch"),
        logKey: r.bytes("log key", 64),
        releaseKey: r.bytes("release key", 64),
        maxSuccessorGuessLimit: r.u32("max successor guess limit"),
        witnessPolicy: {
          witnesses: r.list("witnesses", MAX_WITNESSES, (r) => ({
            name: r.string("witness name", MAX_WITNESS_NAME_BYTES),
            key: r.bytes("witness key", 64),
          })),
          threshold: r.u32("witness threshold"),
        },
      };
      break;
    case HOST_TAG["genesis-join"]:
      m = {
        type: "genesis-join",
        package: r.bytes("package", 1 << 16),
        statement: r.bytes("statement", 1 << 16),
      };
      break;
    case HOST_TAG.countersign:
      m = {
        type: "countersign",
        tag: r.u32("tag"),
        artifact: r.bytes("artifact", 1 << 16),
        logSignature: r.bytes("log signature", 64),
      };
      break;
    case HOST_TAG["genesis-finish"]:
      m = { type: "genesis-finish", signatures: r.list("signatures", 9, (r) => r.bytes("signature", 64)) };
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
      w.bytes(m.identity)
        .u8(m.node)
        .bytes(m.fleetId)
        .bytes(m.vaultPublicKey)
        .u32(m.guessesAllowed)
        .u8(m.recovering ? 1 : 0)
        .bytes(m.challenge);
      break;
    case "failed":
      w.string(m.code).string(m.message);
      break;
    case "persist":
      w.u32(m.id);
      w.list(m.entries, writeEntry);
      writeOptEntry(w, m.snapshot);
      if (m.truncateFrom === null) w.u8(0);
      else w.u8(1).u64(m.truncateFrom);
      break;
    case "reply":
      w.u32(m.tag);
      if (m.ok) w.u8(1).bytes(m.envelope);
      else w.u8(0).string(m.code).string(m.message);
      break;
    case "status":
      w.u8(m.node)
        .string(m.role)
        .u64(m.term)
        .u8(m.leader)
        .u64(m.commitIndex)
        .u64(m.durableIndex)
        .u8(m.recovering ? 1 : 0)
        .u64(m.recoverUntil)
        .u32(m.peerForged)
        .u32(m.peerReplayed)
        .u32(m.framesRejected);
      break;
    case "stats":
      w.u64(m.guessesStarted)
        .u64(m.guessesWrong)
        .u64(m.guessesRight)
        .u64(m.recordsDestroyed)
        .u64(m.nvramWrites)
        .u64(m.nvramWriteMs)
        .list(m.nvramWriteBuckets, (w, n) => {
          w.u64(n);
        })
        .u64(m.lastIndex)
        .list(m.peers, (w, p) => {
          w.u8(p.node).u64(p.match);
        });
      break;
    case "peer":
      w.u8(m.to).bytes(m.bytes);
      break;
    case "wake":
      w.u64(m.tick);
      break;
    case "genesis-packages":
      w.bytes(m.statement).list(m.packages, (w, p) => {
        w.bytes(p);
      });
      break;
    case "genesis-signature":
      w.bytes(m.signature);
      break;
    case "countersignature":
      w.u32(m.tag);
      if (m.ok) w.u8(1).bytes(m.signature);
      else w.u8(0).string(m.code).string(m.message);
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
        identity: r.bytes("identity", 4096),
        node: r.u8("node"),
        fleetId: r.bytes("fleet id", 64),
        vaultPublicKey: r.bytes("vault key", 64),
        guessesAllowed: r.u32("guesses allowed"),
        recovering: readFlag(r, "recovering"),
        challenge: r.bytes("challenge", 64),
      };
      break;
    case HSM_TAG.failed:
      m = { type: "failed", code: r.string("code"), message: r.string("message", 4096) };
      break;
    case HSM_TAG.persist: {
      const id = r.u32("id");
      const entries = r.list("entries", MAX_FRAME_ENTRIES, readEntry);
      const snapshot = readOptEntry(r);
      const truncateFrom = readFlag(r, "truncate flag") ? r.u64("truncate from") : null;
      m = { type: "persist", id, entries, snapshot, truncateFrom };
      break;
    }
    case HSM_TAG.reply: {
      const t = r.u32("tag");
      m = readFlag(r, "ok flag")
        ? { type: "reply", tag: t, ok: true, envelope: r.bytes("envelope", 8192) }
        : { type: "reply", tag: t, ok: false, code: r.string("code"), message: r.string("message", 4096) };
      break;
    }
    case HSM_TAG.status:
      m = {
        type: "status",
        node: r.u8("node"),
        role: r.string("role", 32),
        term: r.u64("term"),
        leader: r.u8("leader"),
        commitIndex: r.u64("commit index"),
        durableIndex: r.u64("durable index"),
        recovering: readFlag(r, "recovering"),
        recoverUntil: r.u64("recover until"),
        peerForged: r.u32("forged"),
        peerReplayed: r.u32("replayed"),
        framesRejected: r.u32("frames rejected"),
      };
      break;
    case HSM_TAG.stats: {
      const counts = {
        guessesStarted: r.u64("guesses started"),
        guessesWrong: r.u64("guesses wrong"),
        guessesRight: r.u64("guesses right"),
        recordsDestroyed: r.u64("records destroyed"),
        nvramWrites: r.u64("NVRAM writes"),
        nvramWriteMs: r.u64("NVRAM write time"),
      };
      const buckets = r.list("NVRAM write buckets", NVRAM_WRITE_BUCKETS_MS.length + 1, (r) =>
        r.u64("bucket"),
      );
      check(buckets.length === NVRAM_WRITE_BUCKETS_MS.length + 1, "stats: wrong number of NVRAM buckets");
      m = {
        type: "stats",
        ...counts,
        nvramWriteBuckets: buckets,
        lastIndex: r.u64("last index"),
        peers: r.list("peers", 9, (r) => ({ node: r.u8("node"), match: r.u64("match") })),
      };
      break;
    }
    case HSM_TAG.peer:
      m = { type: "peer", to: r.u8("to"), bytes: r.bytes("peer message", MAX_BLOB) };
      break;
    case HSM_TAG.wake:
      m = { type: "wake", tick: r.u64("wake tick") };
      break;
    case HSM_TAG["genesis-packages"]:
      m = {
        type: "genesis-packages",
        statement: r.bytes("statement", 1 << 16),
        packages: r.list("packages", 9, (r) => r.bytes("package", 1 << 16)),
      };
      break;
    case HSM_TAG.countersignature: {
      const t = r.u32("tag");
      m = readFlag(r, "ok flag")
        ? { type: "countersignature", tag: t, ok: true, signature: r.bytes("signature", 64) }
        : {
            type: "countersignature",
            tag: t,
            ok: false,
            code: r.string("code"),
            message: r.string("message", 4096),
          };
      break;
    }
    case HSM_TAG["genesis-signature"]:
      m = { type: "genesis-signature", signature: r.bytes("signature", 64) };
      break;
    default:
      check(false, `HSM frame: unknown type ${tag}`);
  }
  r.end();
  return m;
}
