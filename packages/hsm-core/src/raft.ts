/**
 * Raft for the fleet, with no I/O: the core feeds it ticks, peer messages and proposals, and takes
 * from it what to persist, what to send and how far entries are committed (the etcd-raft shape:
 * tick / step / ready / advance). PreVote and CheckQuorum; no leader leases (hosts control the
 * clocks); membership is fixed at genesis. Entries are hash-chained: a follower accepts an entry
 * only if it chains to the entry before it.
 *
 * Durability: a follower acknowledges entries, and grants a vote, only after the core has made them
 * durable (host storage plus the NVRAM record of the log tip, or NVRAM for term and vote). After a
 * restart only what NVRAM says is durable counts: entries the host stored beyond it are persisted
 * again before they are acknowledged.
 *
 * A node whose host storage was rolled back behind what it acknowledged is `recovering` (the
 * `recover` tip, kept in NVRAM by the core): it neither campaigns nor serves, and it votes only for a
 * candidate whose log is at least as up to date as that tip, so what it acknowledged still counts in
 * every election. The core clears it once the node's own durable log and the leader's commit index
 * have passed the tip.
 *
 * Acknowledgements are never taken back: a leader keeps a follower's match index whatever the
 * follower later says, ignores a rejection that answers an append below what that follower
 * acknowledged in the same boot (a stale one, delivered late), and a snapshot whose last entry
 * matches the follower's log keeps the entries after it.
 */
import { bytesEqual } from "@bkv/wire";
import { decodeRaftEntry } from "./raft-entry.js";
import type { PeerMessage, WireEntry } from "./raft-messages.js";

export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

export interface LogRecord extends WireEntry {
  hash: Uint8Array;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  hash: Uint8Array;
}

export interface Outgoing {
  to: number;
  msg: PeerMessage;
}

export interface RaftOptions {
  id: number;
  members: number[];
  electionTicks: number;
  heartbeatTicks: number;
  /** Uniform in [0, 1): randomized election timeouts. */
  random: () => number;
  hash: (bytes: Uint8Array) => Uint8Array;
  /** Build the encoded entry at (index, term, prevHash) for a leader's no-op. */
  noop: (index: number, term: number, prevHash: Uint8Array) => Uint8Array;
  maxAppendEntries?: number;
}

/** A log position in Raft's up-to-date order (term first, then index). */
export interface Position {
  index: number;
  term: number;
}

export interface RaftInit {
  term: number;
  vote: number;
  snapshot: SnapshotMeta;
  snapshotState: Uint8Array | null;
  log: LogRecord[];
  /**
   * How far NVRAM says the log is durable. Entries after it are handed out again to persist (and a
   * snapshot beyond it too) before anything past it is acknowledged.
   */
  durableIndex: number;
  /** The tip acknowledged before a rollback was detected (from NVRAM); null if none. */
  recover: Position | null;
}

export interface Ready {
  /** Term or vote changed: write NVRAM before sending any message. */
  hardState: { term: number; vote: number } | null;
  /** Entries to store (after deleting stored entries from truncateFrom on, if set). */
  entries: LogRecord[];
  truncateFrom: number | null;
  /** A snapshot received from the leader, to install and store. */
  snapshot: { meta: SnapshotMeta; state: Uint8Array } | null;
  messages: Outgoing[];
}

export class Raft {
  readonly id: number;
  term: number;
  vote: number;
  role: Role = "follower";
  leader = 0;
  commitIndex: number;
  durableIndex: number;
  recover: Position | null;
  snapshot: SnapshotMeta;
  snapshotState: Uint8Array | null;
  private log: LogRecord[];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private timeout = 0;
  private votes = new Map<number, boolean>();
  private next = new Map<number, number>();
  private match = new Map<number, number>();
  /** The boot epoch of the follower's answer that set its match index. */
  private matchEpoch = new Map<number, number>();
  /** The newest boot epoch heard from each member. */
  private peerEpoch = new Map<number, number>();
  private active = new Set<number>();
  /**
   * Followers sent an append or snapshot since the last heartbeat round, with the commit index it
   * carried: no heartbeat is due to them while that is still the commit index.
   */
  private sentSinceBeat = new Map<number, number>();
  /** The highest index this node acknowledged in term ackedTerm. */
  private ackedTerm = 0;
  private ackedIndex = 0;
  // outputs
  private hardStateDirty = false;
  private unpersisted: LogRecord[] = [];
  private truncateFrom: number | null = null;
  private pendingSnapshot: { meta: SnapshotMeta; state: Uint8Array } | null = null;
  private outbox: Outgoing[] = [];
  private held: { afterDurable: number; out: Outgoing }[] = [];

  constructor(
    private readonly o: RaftOptions,
    init: RaftInit,
  ) {
    this.id = o.id;
    this.term = init.term;
    this.vote = init.vote;
    this.snapshot = init.snapshot;
    this.snapshotState = init.snapshotState;
    this.log = init.log;
    this.commitIndex = init.snapshot.index;
    this.recover = init.recover;
    if (init.durableIndex < init.snapshot.index && init.snapshotState !== null) {
      // A snapshot the host stored but never confirmed: store it again, with everything after it.
      this.durableIndex = 0;
      this.pendingSnapshot = { meta: init.snapshot, state: init.snapshotState };
      this.truncateFrom = 0;
      this.unpersisted = [...init.log];
    } else {
      this.durableIndex = Math.min(init.durableIndex, this.lastIndex());
      this.unpersisted = init.log.filter((r) => r.index > this.durableIndex);
    }
    this.resetTimeout();
  }

  get recovering(): boolean {
    return this.recover !== null;
  }

  /** Recovering, and the node's durable log and commit index have passed the recover tip. */
  recoverReached(): boolean {
    const r = this.recover;
    return r !== null && this.commitIndex >= r.index && this.durableIndex >= r.index;
  }

  /** The core recorded in NVRAM that the node has recovered. */
  clearRecover(): void {
    this.recover = null;
  }

  // -------------------------------------------------------------------------------------------
  // Log access.

  /** On a leader: each other member's match index (for the host's metrics). */
  matchIndexes(): { node: number; match: number }[] {
    return this.peers().map((node) => ({ node, match: this.match.get(node) ?? 0 }));
  }

  lastIndex(): number {
    return this.snapshot.index + this.log.length;
  }

  lastTerm(): number {
    return this.log.length > 0 ? this.log[this.log.length - 1]!.term : this.snapshot.term;
  }

  lastHash(): Uint8Array {
    return this.log.length > 0 ? this.log[this.log.length - 1]!.hash : this.snapshot.hash;
  }

  entry(i: number): LogRecord | undefined {
    return this.log[i - this.snapshot.index - 1];
  }

  termAt(i: number): number | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    return this.entry(i)?.term;
  }

  hashAt(i: number): Uint8Array | undefined {
    if (i === this.snapshot.index) return this.snapshot.hash;
    return this.entry(i)?.hash;
  }

  /** Entries from..to (inclusive) that are in memory. */
  entries(from: number, to: number): LogRecord[] {
    const lo = Math.max(from, this.snapshot.index + 1);
    return this.log.slice(lo - this.snapshot.index - 1, to - this.snapshot.index);
  }

  private get quorum(): number {
    return Math.floor(this.o.members.length / 2) + 1;
  }

  private peers(): number[] {
    return this.o.members.filter((m) => m !== this.id);
  }

  // -------------------------------------------------------------------------------------------
  // Outputs.

  private send(to: number, msg: PeerMessage, afterDurable = 0): void {
    if (afterDurable > this.durableIndex) this.held.push({ afterDurable, out: { to, msg } });
    else this.outbox.push({ to, msg });
  }

  ready(): Ready {
    const r: Ready = {
      hardState: this.hardStateDirty ? { term: this.term, vote: this.vote } : null,
      entries: this.unpersisted,
      truncateFrom: this.truncateFrom,
      snapshot: this.pendingSnapshot,
      messages: this.outbox,
    };
    this.hardStateDirty = false;
    this.unpersisted = [];
    this.truncateFrom = null;
    this.pendingSnapshot = null;
    this.outbox = [];
    return r;
  }

  hasReady(): boolean {
    return (
      this.hardStateDirty ||
      this.unpersisted.length > 0 ||
      this.truncateFrom !== null ||
      this.pendingSnapshot !== null ||
      this.outbox.length > 0
    );
  }

  /** The core made everything up to index durable (host storage and NVRAM). */
  advanceDurable(index: number): void {
    this.durableIndex = Math.min(index, this.lastIndex());
    const still: typeof this.held = [];
    for (const h of this.held) {
      if (h.afterDurable <= this.durableIndex) this.outbox.push(h.out);
      else still.push(h);
    }
    this.held = still;
    if (this.role === "leader") this.maybeCommit();
  }

  // -------------------------------------------------------------------------------------------
  // Roles.

  private resetTimeout(): void {
    this.electionElapsed = 0;
    this.timeout = this.o.electionTicks + Math.floor(this.o.random() * this.o.electionTicks);
  }

  private becomeFollower(term: number, leader: number): void {
    if (term > this.term) {
      this.term = term;
      this.vote = 0;
      this.hardStateDirty = true;
    }
    this.role = "follower";
    this.leader = leader;
    this.votes.clear();
    this.resetTimeout();
  }

  private becomeLeader(): void {
    this.role = "leader";
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.active.clear();
    this.sentSinceBeat.clear();
    for (const p of this.peers()) {
      this.next.set(p, this.lastIndex() + 1);
      this.match.set(p, 0);
      this.matchEpoch.delete(p);
    }
    // A no-op of the new term lets the leader commit what earlier terms left uncommitted.
    this.appendLocal(this.o.noop(this.lastIndex() + 1, this.term, this.lastHash()));
    this.broadcastAppend();
  }

  private campaign(pre: boolean): void {
    if (this.recover !== null) return;
    this.votes.clear();
    if (pre) {
      this.role = "pre-candidate";
    } else {
      this.role = "candidate";
      this.term += 1;
      this.vote = this.id;
      this.hardStateDirty = true;
    }
    this.leader = 0;
    this.resetTimeout();
    this.votes.set(this.id, true);
    if (this.tally() === "won") return this.winElection(pre);
    const term = pre ? this.term + 1 : this.term;
    for (const p of this.peers()) {
      this.send(p, { type: "vote", term, lastIndex: this.lastIndex(), lastTerm: this.lastTerm(), pre });
    }
  }

  private tally(): "won" | "lost" | "pending" {
    let yes = 0;
    let no = 0;
    for (const g of this.votes.values()) g ? yes++ : no++;
    if (yes >= this.quorum) return "won";
    if (no > this.o.members.length - this.quorum) return "lost";
    return "pending";
  }

  private winElection(pre: boolean): void {
    if (pre) this.campaign(false);
    else this.becomeLeader();
  }

  // -------------------------------------------------------------------------------------------
  // Ticks.

  /**
   * n ticks of time passed (n > 1 when the host held ticks back, or was late): they count in full,
   * but act as one late tick: at most one CheckQuorum, one heartbeat, one campaign, as when a
   * single tick arrives late.
   */
  tick(n = 1): void {
    this.electionElapsed += n;
    if (this.role === "leader") {
      this.heartbeatElapsed += n;
      if (this.electionElapsed >= this.o.electionTicks) {
        // CheckQuorum: step down unless a majority answered within an election timeout.
        this.electionElapsed = 0;
        if (this.active.size + 1 < this.quorum) {
          this.becomeFollower(this.term, 0);
          return;
        }
        this.active.clear();
      }
      if (this.heartbeatElapsed >= this.o.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.heartbeat();
      }
      return;
    }
    if (this.electionElapsed >= this.timeout && this.recover === null) this.campaign(true);
  }

  /**
   * Ticks from now until tick() next does something on its own (a heartbeat, CheckQuorum, an
   * election timeout); null if nothing is due (a recovering node waits for messages). At least 1.
   */
  ticksToNextEvent(): number | null {
    if (this.role === "leader") {
      return Math.max(
        1,
        Math.min(this.o.heartbeatTicks - this.heartbeatElapsed, this.o.electionTicks - this.electionElapsed),
      );
    }
    if (this.recover !== null) return null;
    return Math.max(1, this.timeout - this.electionElapsed);
  }

  // -------------------------------------------------------------------------------------------
  // Proposals (leader).

  private appendLocal(bytes: Uint8Array): number {
    const e = decodeRaftEntry(bytes);
    const rec: LogRecord = { index: e.index, term: e.term, bytes, hash: this.o.hash(bytes) };
    this.log.push(rec);
    this.unpersisted.push(rec);
    return rec.index;
  }

  /** Append an entry built by make(index, term, prevHash); null unless leader. */
  propose(make: (index: number, term: number, prevHash: Uint8Array) => Uint8Array): number | null {
    if (this.role !== "leader") return null;
    const index = this.appendLocal(make(this.lastIndex() + 1, this.term, this.lastHash()));
    // One append in flight per follower: entries proposed meanwhile go out together with the next
    // one (sent when the follower answers, or at the next heartbeat). Batching under load.
    for (const p of this.peers()) {
      if ((this.next.get(p) ?? 0) <= (this.match.get(p) ?? 0) + 1) this.sendAppend(p);
    }
    return index;
  }

  private broadcastAppend(): void {
    for (const p of this.peers()) this.sendAppend(p);
  }

  /**
   * A heartbeat (an append, empty if the follower is up to date) to each follower, except one sent
   * an append since the last round that carried the current commit index: under load appends go
   * out all the time and already reset the followers' election timeouts and draw the answers
   * CheckQuorum counts, and a follower learns the commit index no later than with every heartbeat.
   * An append the host dropped is retried a round later than before.
   */
  private heartbeat(): void {
    for (const p of this.peers()) if (this.sentSinceBeat.get(p) !== this.commitIndex) this.sendAppend(p);
    this.sentSinceBeat.clear();
  }

  private sendAppend(p: number): void {
    const next = this.next.get(p) ?? this.lastIndex() + 1;
    if (next <= this.snapshot.index) {
      if (this.snapshotState === null) return;
      this.send(p, {
        type: "snap",
        term: this.term,
        index: this.snapshot.index,
        snapTerm: this.snapshot.term,
        hash: this.snapshot.hash,
        state: this.snapshotState,
        commit: this.commitIndex,
      });
      this.next.set(p, this.snapshot.index + 1);
      this.sentSinceBeat.set(p, this.commitIndex);
      return;
    }
    const prevIndex = next - 1;
    const max = this.o.maxAppendEntries ?? 256;
    const entries = this.entries(next, Math.min(this.lastIndex(), next + max - 1));
    this.send(p, {
      type: "app",
      term: this.term,
      prevIndex,
      prevTerm: this.termAt(prevIndex)!,
      prevHash: this.hashAt(prevIndex)!,
      entries: entries.map((e) => ({ index: e.index, term: e.term, bytes: e.bytes })),
      commit: this.commitIndex,
    });
    // Optimistic: the next append continues after these; a rejection moves it back.
    if (entries.length > 0) this.next.set(p, entries[entries.length - 1]!.index + 1);
    this.sentSinceBeat.set(p, this.commitIndex);
  }

  private maybeCommit(): void {
    const matches = [this.durableIndex, ...this.peers().map((p) => this.match.get(p) ?? 0)].sort(
      (a, b) => b - a,
    );
    const n = matches[this.quorum - 1]!;
    if (n > this.commitIndex && this.termAt(n) === this.term) this.commitIndex = n;
  }

  // -------------------------------------------------------------------------------------------
  // Messages.

  /** A message from member `from`, sent in its boot epoch `epoch` (authenticated by the channel). */
  step(from: number, m: PeerMessage, epoch: number): void {
    if (!this.o.members.includes(from) || from === this.id) return;
    if (epoch < (this.peerEpoch.get(from) ?? 0)) return; // sent before that member's latest restart
    this.peerEpoch.set(from, epoch);
    switch (m.type) {
      case "app":
        return this.onAppend(from, m);
      case "app-resp":
        return this.onAppendResponse(from, m, epoch);
      case "vote":
        return this.onVote(from, m);
      case "vote-resp":
        return this.onVoteResponse(from, m);
      case "snap":
        return this.onSnapshot(from, m);
      default:
        return;
    }
  }

  /** An append or snapshot from a leader: refuse a stale term, else follow it. False if refused. */
  private acceptLeader(from: number, term: number, answers: number): boolean {
    if (term < this.term) {
      this.send(from, {
        type: "app-resp",
        term: this.term,
        success: false,
        index: answers,
        hint: this.lastIndex(),
      });
      return false;
    }
    if (term > this.term || this.role !== "follower" || this.leader !== from) this.becomeFollower(term, from);
    this.electionElapsed = 0;
    return true;
  }

  /** Acknowledge entries up to index once they are durable; remember it for this term. */
  private ack(to: number, index: number): void {
    if (this.ackedTerm !== this.term) {
      this.ackedTerm = this.term;
      this.ackedIndex = 0;
    }
    this.ackedIndex = Math.max(this.ackedIndex, index);
    this.send(to, { type: "app-resp", term: this.term, success: true, index, hint: index }, index);
  }

  /** True if dropping entries from index on would take back an acknowledgement of this term. */
  private wouldUnack(index: number): boolean {
    return this.ackedTerm === this.term && index <= this.ackedIndex;
  }

  private onAppend(from: number, m: PeerMessage & { type: "app" }): void {
    if (!this.acceptLeader(from, m.term, m.prevIndex)) return;
    const reject = (hint: number) => {
      this.send(from, { type: "app-resp", term: this.term, success: false, index: m.prevIndex, hint });
    };
    let prevIndex = m.prevIndex;
    let entries = m.entries;
    if (prevIndex < this.snapshot.index) {
      // The start is already in our snapshot: skip what it covers.
      entries = entries.filter((e) => e.index > this.snapshot.index);
      if (entries.length === 0) return this.ack(from, this.snapshot.index);
      prevIndex = this.snapshot.index;
      const first = decodeRaftEntry(entries[0]!.bytes);
      if (first.index !== prevIndex + 1 || !bytesEqual(first.prevHash, this.snapshot.hash))
        return reject(this.snapshot.index);
    } else {
      if (prevIndex > this.lastIndex()) return reject(this.lastIndex());
      const h = this.hashAt(prevIndex);
      if (this.termAt(prevIndex) !== m.prevTerm || h === undefined || !bytesEqual(h, m.prevHash)) {
        return reject(Math.min(prevIndex - 1, this.lastIndex()));
      }
    }
    let expect = prevIndex + 1;
    for (const w of entries) {
      let e: ReturnType<typeof decodeRaftEntry>;
      try {
        e = decodeRaftEntry(w.bytes);
      } catch {
        return reject(expect - 1);
      }
      if (e.index !== expect || w.index !== expect || e.term !== w.term || e.term > m.term)
        return reject(expect - 1);
      const prev = this.hashAt(expect - 1);
      const mine = this.entry(expect);
      if (mine !== undefined && mine.term === e.term && bytesEqual(mine.bytes, w.bytes)) {
        expect++;
        continue;
      }
      if (prev === undefined || !bytesEqual(e.prevHash, prev)) return reject(expect - 1);
      if (mine !== undefined) {
        // Never rewrite committed entries, nor what this node acknowledged in this term.
        if (expect <= this.commitIndex || this.wouldUnack(expect)) return reject(expect - 1);
        this.log.length = expect - this.snapshot.index - 1;
        this.unpersisted = this.unpersisted.filter((u) => u.index < expect);
        this.truncateFrom = this.truncateFrom === null ? expect : Math.min(this.truncateFrom, expect);
        this.durableIndex = Math.min(this.durableIndex, expect - 1);
        this.dropHeld(expect);
      }
      const rec: LogRecord = { index: e.index, term: e.term, bytes: w.bytes, hash: this.o.hash(w.bytes) };
      this.log.push(rec);
      this.unpersisted.push(rec);
      expect++;
    }
    const lastNew = expect - 1;
    if (m.commit > this.commitIndex)
      this.commitIndex = Math.max(this.commitIndex, Math.min(m.commit, lastNew));
    this.ack(from, lastNew);
  }

  private onSnapshot(from: number, m: PeerMessage & { type: "snap" }): void {
    if (!this.acceptLeader(from, m.term, m.index)) return;
    if (m.index <= this.commitIndex) return this.ack(from, this.commitIndex);
    const mine = this.hashAt(m.index);
    if (this.termAt(m.index) === m.snapTerm && mine !== undefined && bytesEqual(mine, m.hash)) {
      // The log holds the snapshot's last entry: all the snapshot says is that it is committed.
      // Keep the entries after it (they may be acknowledged already).
      this.commitIndex = m.index;
      return this.ack(from, m.index);
    }
    // Entries this node acknowledged in this term up to the snapshot's index are in it (committed
    // state of this term's leader); past it, the entry at the snapshot's index would have matched.
    if (this.ackedTerm === this.term && this.ackedIndex > m.index) return;
    const meta: SnapshotMeta = { index: m.index, term: m.snapTerm, hash: m.hash };
    this.snapshot = meta;
    this.snapshotState = m.state;
    this.log = [];
    this.unpersisted = [];
    this.truncateFrom = 0;
    this.pendingSnapshot = { meta, state: m.state };
    this.commitIndex = m.index;
    this.durableIndex = 0;
    this.dropHeld(0);
    this.ack(from, m.index);
  }

  /**
   * Answers waiting for entries from index on to become durable were about entries that are gone
   * (truncated, or replaced by a snapshot): never send them, or a leader would count an
   * acknowledgement of an entry this node no longer holds once other entries reach that index.
   */
  private dropHeld(index: number): void {
    this.held = this.held.filter((h) => h.afterDurable < index);
  }

  private onAppendResponse(from: number, m: PeerMessage & { type: "app-resp" }, epoch: number): void {
    if (m.term > this.term) return this.becomeFollower(m.term, 0);
    if (m.term < this.term || this.role !== "leader") return;
    this.active.add(from);
    const match = this.match.get(from) ?? 0;
    if (m.success) {
      const idx = Math.min(m.index, this.lastIndex());
      if (idx > match) {
        this.match.set(from, idx);
        this.matchEpoch.set(from, epoch);
      }
      if (idx + 1 > (this.next.get(from) ?? 0)) this.next.set(from, idx + 1);
      this.maybeCommit();
      if ((this.next.get(from) ?? 0) <= this.lastIndex()) this.sendAppend(from);
    } else {
      // The match index never goes back: what a follower acknowledged counts for good (if its host
      // later loses it, the follower's NVRAM keeps it recovering and its vote bound to it). Within
      // the boot that acknowledged it, a rejection of an append at or below it is stale.
      const sameBoot = this.matchEpoch.get(from) === epoch;
      if (sameBoot && m.index <= match) return;
      const before = this.next.get(from) ?? 1;
      let next = Math.max(1, Math.min(before - 1, m.hint + 1));
      if (sameBoot) next = Math.max(next, match + 1);
      this.next.set(from, next);
      // Resend at once only if that moved; otherwise the next heartbeat retries (no ping-pong).
      if (next !== before) this.sendAppend(from);
    }
  }

  private upToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex());
  }

  private onVote(from: number, m: PeerMessage & { type: "vote" }): void {
    const deny = (term: number) => this.send(from, { type: "vote-resp", term, granted: false, pre: m.pre });
    // A rolled-back node's log may lack what it acknowledged: it votes only for a candidate whose log
    // is at least as up to date as what it acknowledged.
    const r = this.recover;
    if (r !== null && !(m.lastTerm > r.term || (m.lastTerm === r.term && m.lastIndex >= r.index)))
      return deny(this.term);
    // Heard from a live leader within an election timeout: ignore disruptive candidates.
    const leaderAlive = this.leader !== 0 && this.electionElapsed < this.o.electionTicks;
    if (m.pre) {
      const grant = m.term > this.term && !leaderAlive && this.upToDate(m.lastIndex, m.lastTerm);
      this.send(from, { type: "vote-resp", term: grant ? m.term : this.term, granted: grant, pre: true });
      return;
    }
    if (m.term < this.term) return deny(this.term);
    if (m.term > this.term) {
      if (leaderAlive) return deny(this.term);
      this.becomeFollower(m.term, 0);
    }
    if ((this.vote === 0 || this.vote === from) && this.upToDate(m.lastIndex, m.lastTerm)) {
      if (this.vote !== from) {
        this.vote = from;
        this.hardStateDirty = true;
      }
      this.resetTimeout();
      this.send(from, { type: "vote-resp", term: this.term, granted: true, pre: false });
      return;
    }
    deny(this.term);
  }

  private onVoteResponse(from: number, m: PeerMessage & { type: "vote-resp" }): void {
    if (m.pre) {
      if (this.role !== "pre-candidate") return;
      if (!m.granted && m.term > this.term) return this.becomeFollower(m.term, 0);
      if (m.term !== this.term + 1 && m.granted) return;
    } else {
      if (m.term > this.term) return this.becomeFollower(m.term, 0);
      if (this.role !== "candidate" || m.term !== this.term) return;
    }
    this.votes.set(from, m.granted);
    const t = this.tally();
    if (t === "won") this.winElection(m.pre);
    else if (t === "lost") this.becomeFollower(this.term, 0);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots taken by the core of its committed state.

  compact(meta: SnapshotMeta, state: Uint8Array): void {
    if (meta.index <= this.snapshot.index || meta.index > this.commitIndex) return;
    this.log = this.log.slice(meta.index - this.snapshot.index);
    this.snapshot = meta;
    this.snapshotState = state;
  }
}
