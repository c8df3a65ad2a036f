/**
 * Entries of the HSMs' replicated (Raft) log; the transparency log's entry is another thing
 * (@bkv/tlog log-entry.ts). Each client request that passes its checks becomes one entry whose ops
 * record the decisions the core took (so applying an entry is deterministic and needs no randomness
 * or cryptography). Entries are hash-chained and sealed before they leave the HSM.
 */
import {
  check,
  GENESIS_CHALLENGE_LENGTH,
  LOG_KEY_LENGTH,
  MAX_NAMESPACE_BYTES,
  MAX_WITNESS_NAME_BYTES,
  MAX_WITNESSES,
  RELEASE_KEY_LENGTH,
  REQUEST_ID_BYTES,
  Reader,
  SESSION_ID_BYTES,
  TICKET_BYTES,
  WITNESS_KEY_LENGTH,
  type WitnessPolicy,
  Writer,
} from "@bkv/wire";

export interface Genesis {
  /** Random id of the fleet, fixed at its creation. */
  fleetId: Uint8Array;
  /**
   * Where the fleet is published, frozen for its life: the deployment's namespace in the
   * transparency log, the fleet's epoch there, and the log's raw Ed25519 key. The fleet counter-signs
   * only bundles of this namespace and epoch that this key signed.
   */
  namespace: string;
  epoch: number;
  logKey: Uint8Array;
  /**
   * What the fleet accepts of a successor, frozen for its life (docs/migration.md §2): the release
   * key (raw Ed25519) accepted code is published under, and the highest guess limit a successor
   * may have (1 to guessLimit).
   */
  releaseKey: Uint8Array;
  maxSuccessorGuessLimit: number;
  /**
   * The log's witness policy a successor's log entries are checked under (checkSuccessor), frozen
   * with the rest (genesis statement v5).
   */
  witnessPolicy: WitnessPolicy;
  /** Members' attestations (encoded, @bkv/wire); node i is members[i - 1]. Frozen for the fleet's life. */
  members: Uint8Array[];
  /** challenges[i]: member i + 1's genesis challenge (fresh at its boot, in the statement it signs). */
  challenges: Uint8Array[];
  /** The code measurement every member attested at genesis. */
  measurement: Uint8Array;
  /** OPAQUE server setup (opaque-ke serialization, base64url), holds the OPRF seed and AKE key. */
  opaqueServerSetup: string;
  hpkePrivateKey: Uint8Array;
  hpkePublicKey: Uint8Array;
  /** Ed25519 seed of the fleet signing key (counter-signs validation bundles) and its public key. */
  fleetSigningSeed: Uint8Array;
  fleetSigningKey: Uint8Array;
  guessLimit: number;
  createdAt: number;
}

export type Op =
  | { op: "genesis"; genesis: Genesis }
  /** credential: the registration's ticket, which names the OPRF key of this registration alone. */
  | {
      op: "put-record";
      user: string;
      credential: Uint8Array;
      registration: Uint8Array;
      wrappedKey: Uint8Array;
    }
  /** A guess is used: a login started and its server state is kept until it finishes or expires. */
  | { op: "guess"; user: string; sessionId: Uint8Array; loginState: string; expiresAt: number }
  /** A successful login: guesses started after this session's own stay counted. */
  | { op: "login-ok"; user: string; sessionId: Uint8Array }
  /** A registration ticket handed out by register-start (register-finish must present it). */
  | { op: "ticket"; user: string; ticket: Uint8Array; expiresAt: number }
  | { op: "login-failed"; user: string; sessionId: Uint8Array }
  | { op: "drop-expired"; user: string }
  | { op: "destroy"; user: string };

/** What the leader answered a request, kept so that a retry of the very same request gets it again. */
export interface Answer {
  /** SHA-256 of the request envelope the answer is for. */
  digest: Uint8Array;
  /** The sealed response envelope (only that request's sender can open it). */
  reply: Uint8Array;
}

export interface RaftEntryBody {
  /** HSM clock when the entry was made (monotonic across the log). */
  time: number;
  /** The client request this entry answers; empty for internal entries (genesis, no-ops). */
  requestId: Uint8Array;
  /** For an entry that answers a request: its answer. */
  answer?: Answer;
  ops: Op[];
}

export interface RaftEntry extends RaftEntryBody {
  index: number;
  /** Raft term of the leader that created the entry. */
  term: number;
  prevHash: Uint8Array;
}

const OP_TAG = {
  genesis: 1,
  "put-record": 2,
  guess: 3,
  "login-ok": 4,
  "login-failed": 5,
  "drop-expired": 6,
  destroy: 7,
  ticket: 8,
} as const;

export function writeOp(w: Writer, o: Op): void {
  w.u8(OP_TAG[o.op]);
  switch (o.op) {
    case "genesis":
      w.fixed(o.genesis.fleetId)
        .string(o.genesis.namespace)
        .u32(o.genesis.epoch)
        .fixed(o.genesis.logKey)
        .fixed(o.genesis.releaseKey)
        .u32(o.genesis.maxSuccessorGuessLimit)
        .list(o.genesis.witnessPolicy.witnesses, (w, x) => {
          w.string(x.name).fixed(x.key);
        })
        .u32(o.genesis.witnessPolicy.threshold)
        .list(o.genesis.members, (w, m) => {
          w.bytes(m);
        })
        .list(o.genesis.challenges, (w, c) => {
          w.fixed(c);
        })
        .fixed(o.genesis.measurement)
        .string(o.genesis.opaqueServerSetup)
        .bytes(o.genesis.hpkePrivateKey)
        .bytes(o.genesis.hpkePublicKey)
        .fixed(o.genesis.fleetSigningSeed)
        .fixed(o.genesis.fleetSigningKey)
        .u32(o.genesis.guessLimit)
        .u64(o.genesis.createdAt);
      break;
    case "put-record":
      w.string(o.user).fixed(o.credential).bytes(o.registration).bytes(o.wrappedKey);
      break;
    case "guess":
      w.string(o.user).fixed(o.sessionId).string(o.loginState).u64(o.expiresAt);
      break;
    case "login-failed":
    case "login-ok":
      w.string(o.user).fixed(o.sessionId);
      break;
    case "ticket":
      w.string(o.user).fixed(o.ticket).u64(o.expiresAt);
      break;
    case "drop-expired":
    case "destroy":
      w.string(o.user);
      break;
  }
}

export function readOp(r: Reader): Op {
  const tag = r.u8("op");
  switch (tag) {
    case OP_TAG.genesis:
      return {
        op: "genesis",
        genesis: {
          fleetId: r.fixed(16, "fleet id"),
          namespace: r.string("namespace", MAX_NAMESPACE_BYTES),
          epoch: r.u32("epoch"),
          logKey: r.fixed(LOG_KEY_LENGTH, "log key"),
          releaseKey: r.fixed(RELEASE_KEY_LENGTH, "release key"),
          maxSuccessorGuessLimit: r.u32("max successor guess limit"),
          witnessPolicy: {
            witnesses: r.list("witnesses", MAX_WITNESSES, (r) => ({
              name: r.string("witness name", MAX_WITNESS_NAME_BYTES),
              key: r.fixed(WITNESS_KEY_LENGTH, "witness key"),
            })),
            threshold: r.u32("witness threshold"),
          },
          members: r.list("members", 9, (r) => r.bytes("member attestation", 4096)),
          challenges: r.list("challenges", 9, (r) => r.fixed(GENESIS_CHALLENGE_LENGTH, "challenge")),
          measurement: r.fixed(32, "measurement"),
          opaqueServerSetup: r.string("server setup", 4096),
          hpkePrivateKey: r.bytes("HPKE private key", 64),
          hpkePublicKey: r.bytes("HPKE public key", 64),
          fleetSigningSeed: r.fixed(32, "fleet signing seed"),
          fleetSigningKey: r.fixed(32, "fleet signing key"),
          guessLimit: r.u32("guess limit"),
          createdAt: r.u64("created at"),
        },
      };
    case OP_TAG["put-record"]:
      return {
        op: "put-record",
        user: r.string("user"),
        credential: r.fixed(TICKET_BYTES, "credential"),
        registration: r.bytes("registration"),
        wrappedKey: r.bytes("wrapped key"),
      };
    case OP_TAG.guess:
      return {
        op: "guess",
        user: r.string("user"),
        sessionId: r.fixed(SESSION_ID_BYTES, "session id"),
        loginState: r.string("login state", 4096),
        expiresAt: r.u64("expires at"),
      };
    case OP_TAG["login-failed"]:
      return {
        op: "login-failed",
        user: r.string("user"),
        sessionId: r.fixed(SESSION_ID_BYTES, "session id"),
      };
    case OP_TAG["login-ok"]:
      return { op: "login-ok", user: r.string("user"), sessionId: r.fixed(SESSION_ID_BYTES, "session id") };
    case OP_TAG.ticket:
      return {
        op: "ticket",
        user: r.string("user"),
        ticket: r.fixed(TICKET_BYTES, "ticket"),
        expiresAt: r.u64("expires at"),
      };
    case OP_TAG["drop-expired"]:
      return { op: "drop-expired", user: r.string("user") };
    case OP_TAG.destroy:
      return { op: "destroy", user: r.string("user") };
    default:
      check(false, `log entry: unknown op ${tag}`);
  }
}

export function encodeRaftEntry(e: RaftEntry): Uint8Array {
  const w = new Writer().u64(e.index).u64(e.term).fixed(e.prevHash).u64(e.time).bytes(e.requestId);
  if (e.answer === undefined) w.u8(0);
  else w.u8(1).fixed(e.answer.digest).bytes(e.answer.reply);
  return w.list(e.ops, writeOp).finish();
}

/** The biggest sealed reply an entry keeps (a response envelope is far smaller). */
export const MAX_REPLY_BYTES = 8192;

export function decodeRaftEntry(b: Uint8Array): RaftEntry {
  const r = new Reader(b, "log entry");
  const index = r.u64("index");
  const term = r.u64("term");
  const prevHash = r.fixed(32, "previous hash");
  const time = r.u64("time");
  const requestId = r.bytes("request id", REQUEST_ID_BYTES);
  check(requestId.length === 0 || requestId.length === REQUEST_ID_BYTES, "log entry: bad request id");
  const hasAnswer = r.u8("answer flag");
  check(hasAnswer <= 1 && (hasAnswer === 0 || requestId.length > 0), "log entry: bad answer flag");
  const answer =
    hasAnswer === 1
      ? { digest: r.fixed(32, "request digest"), reply: r.bytes("reply", MAX_REPLY_BYTES) }
      : undefined;
  const ops = r.list("ops", 64, readOp);
  r.end();
  return answer === undefined
    ? { index, term, prevHash, time, requestId, ops }
    : { index, term, prevHash, time, requestId, answer, ops };
}
