/**
 * The vault state that the log builds up: the fleet secrets from genesis, one record per user, and
 * the replay cache. apply() is the only function that changes it, and it is deterministic.
 */
import { BkvError, check, ErrorCode, fromHex, Reader, toHex, Writer } from "@bkv/wire";
import { REQUEST_MEMORY_MS } from "./policy.js";
import type { Answer, Genesis, Op, RaftEntry } from "./raft-entry.js";
import { MAX_REPLY_BYTES, readOp, writeOp } from "./raft-entry.js";
import { readRecord, writeRecord } from "./record-codec.js";

export interface PendingLogin {
  loginState: string;
  expiresAt: number;
  /** The record's guess number of this login (its guessSeq when the guess was counted). */
  seq: number;
}

export interface VaultRecord {
  /** The registration's credential id (its ticket): names the OPRF key (see vault.ts). */
  credential: Uint8Array;
  /** OPAQUE registration record (RFC 9807 §5.1.2). */
  registration: Uint8Array;
  /** K wrapped by the client under a key derived from OPAQUE's export key. */
  wrappedKey: Uint8Array;
  guessesUsed: number;
  /** Guesses ever counted on this record (numbers the logins). */
  guessSeq: number;
  /** Logins whose guess is counted and whose KE3 has not arrived; keyed by session id (hex). */
  pending: Map<string, PendingLogin>;
}

/** A request the log answered: when it may be forgotten, the entry that answered it, the answer. */
export interface SeenRequest {
  forgetAt: number;
  index: number;
  answer: Answer | undefined;
}

export class VaultState {
  genesis: Genesis | null = null;
  records = new Map<string, VaultRecord>();
  /**
   * The registration ticket each user was last handed (register-start), until it expires, is used,
   * or anything else happens to that user's record; insertion order = expiry order.
   */
  tickets = new Map<string, { ticket: Uint8Array; expiresAt: number }>();
  /** Request ids (hex) seen, with their answers; insertion order = expiry order. */
  seen = new Map<string, SeenRequest>();
  /** Highest HSM time recorded in the log. */
  clock = 0;
  /** Index, term and chain hash of the last applied entry. */
  index = 0;
  term = 0;
  chainHash: Uint8Array = new Uint8Array(32);

  get guessLimit(): number {
    if (this.genesis === null) throw new BkvError(ErrorCode.Unavailable, "vault has no genesis");
    return this.genesis.guessLimit;
  }

  /** Apply one entry whose chain hash the caller has computed. */
  apply(entry: RaftEntry, hash: Uint8Array): void {
    if (entry.index !== this.index + 1) {
      throw new BkvError(ErrorCode.Corrupt, `log entry ${entry.index} does not follow ${this.index}`);
    }
    this.clock = Math.max(this.clock, entry.time);
    if (entry.requestId.length > 0) {
      this.seen.set(toHex(entry.requestId), {
        forgetAt: this.clock + REQUEST_MEMORY_MS,
        index: entry.index,
        answer: entry.answer,
      });
    }
    for (const [id, s] of this.seen) {
      if (s.forgetAt > this.clock) break;
      this.seen.delete(id);
    }
    for (const [user, t] of this.tickets) {
      if (t.expiresAt > this.clock) break;
      this.tickets.delete(user);
    }
    for (const op of entry.ops) this.applyOp(op);
    this.index = entry.index;
    this.term = entry.term;
    this.chainHash = hash;
  }

  private applyOp(o: Op): void {
    // Anything that happens to a user's record voids the registration ticket it was last handed.
    if (o.op !== "genesis") this.tickets.delete(o.user);
    switch (o.op) {
      case "genesis":
        if (this.genesis !== null) throw new BkvError(ErrorCode.Corrupt, "second genesis in the log");
        this.genesis = o.genesis;
        return;
      case "put-record":
        this.records.set(o.user, {
          credential: o.credential,
          registration: o.registration,
          wrappedKey: o.wrappedKey,
          guessesUsed: 0,
          guessSeq: 0,
          pending: new Map(),
        });
        return;
      case "ticket":
        this.tickets.set(o.user, { ticket: o.ticket, expiresAt: o.expiresAt });
        return;
      case "destroy":
        this.records.delete(o.user);
        return;
    }
    const rec = this.records.get(o.user);
    if (rec === undefined) throw new BkvError(ErrorCode.Corrupt, `log op ${o.op} for a missing record`);
    switch (o.op) {
      case "guess":
        rec.guessesUsed += 1;
        rec.guessSeq += 1;
        rec.pending.set(toHex(o.sessionId), {
          loginState: o.loginState,
          expiresAt: o.expiresAt,
          seq: rec.guessSeq,
        });
        return;
      case "login-ok": {
        // The PIN was right at this login's guess: guesses started after it (another device's, or
        // an attacker's while this KE3 was held back) still count.
        const p = rec.pending.get(toHex(o.sessionId));
        if (p === undefined)
          throw new BkvError(ErrorCode.Corrupt, "log op login-ok for no login in progress");
        rec.guessesUsed = rec.guessSeq - p.seq;
        for (const [id, q] of rec.pending) if (q.seq <= p.seq) rec.pending.delete(id);
        return;
      }
      case "login-failed":
        rec.pending.delete(toHex(o.sessionId));
        return;
      case "drop-expired":
        for (const [id, p] of rec.pending) if (p.expiresAt <= this.clock) rec.pending.delete(id);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots: the whole state in canonical bytes (pinned in testdata/formats/vault-snapshot.json).
  // Records in ascending user order (each as record-codec.ts encodes it), the other maps in insertion (expiry) order; decode accepts
  // only that one encoding: a flag other than 0 or 1, users out of order or any key twice is refused.

  encode(): Uint8Array {
    const w = new Writer().u64(this.index).u64(this.term).fixed(this.chainHash).u64(this.clock);
    if (this.genesis === null) w.u8(0);
    else writeOp(w.u8(1), { op: "genesis", genesis: this.genesis });
    const users = [...this.records.keys()].sort();
    w.list(users, (w, user) => {
      writeRecord(w, user, this.records.get(user)!);
    });
    w.list([...this.tickets], (w, [user, t]) => {
      w.string(user).fixed(t.ticket).u64(t.expiresAt);
    });
    w.list([...this.seen], (w, [id, s]) => {
      w.fixed(fromHex(id)).u64(s.forgetAt).u64(s.index);
      if (s.answer === undefined) w.u8(0);
      else w.u8(1).fixed(s.answer.digest).bytes(s.answer.reply);
    });
    return w.finish();
  }

  /** An independent copy (the leader's speculative state starts as one). */
  clone(): VaultState {
    return VaultState.decode(this.encode());
  }

  static decode(b: Uint8Array): VaultState {
    const r = new Reader(b, "vault snapshot");
    const s = new VaultState();
    s.index = r.u64("index");
    s.term = r.u64("term");
    s.chainHash = r.fixed(32, "chain hash");
    s.clock = r.u64("clock");
    const hasGenesis = r.u8("genesis flag");
    check(hasGenesis <= 1, "vault snapshot: bad genesis flag");
    if (hasGenesis === 1) {
      const op = readOp(r);
      check(op.op === "genesis", "vault snapshot: expected genesis");
      s.genesis = op.genesis;
    }
    const n = r.u32("record count");
    let prevUser = "";
    for (let i = 0; i < n; i++) {
      const { user, record } = readRecord(r);
      check(i === 0 || user > prevUser, "vault snapshot: records not in ascending user order");
      prevUser = user;
      s.records.set(user, record);
    }
    const t = r.u32("ticket count");
    for (let i = 0; i < t; i++) {
      const user = r.string("user");
      check(!s.tickets.has(user), "vault snapshot: a user's ticket twice");
      s.tickets.set(user, { ticket: r.fixed(16, "ticket"), expiresAt: r.u64("expires at") });
    }
    const k = r.u32("seen count");
    for (let i = 0; i < k; i++) {
      const id = toHex(r.fixed(16, "request id"));
      check(!s.seen.has(id), "vault snapshot: a request id twice");
      const forgetAt = r.u64("forget at");
      const index = r.u64("answered at");
      const flag = r.u8("answer flag");
      check(flag <= 1, "vault snapshot: bad answer flag");
      const answer =
        flag === 1
          ? { digest: r.fixed(32, "request digest"), reply: r.bytes("reply", MAX_REPLY_BYTES) }
          : undefined;
      s.seen.set(id, { forgetAt, index, answer });
    }
    r.end();
    return s;
  }
}
