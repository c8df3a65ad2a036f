/**
 * Safety invariants of a fleet, checked as it runs (after every action the fleet reports, on every
 * NVRAM write and on every peer message an HSM emits), for the simulator and the attack tests:
 *
 * 1. No node acknowledges an entry past its NVRAM tip, and none grants a vote it has not recorded
 *    in NVRAM.
 * 2. An NVRAM tip drops (lower index, or the same index with another hash) only by truncating
 *    entries that were never committed, or while NVRAM's recover tip still stands for the dropped
 *    one (a node recovering from a rollback votes as if it held it); an NVRAM term never goes back.
 * 3. Every committed index is held by a majority within their NVRAM tips, counting a recover tip
 *    that reaches it.
 * 4. No two nodes commit different entries at one index (nor two leaders lead one term, nor does a
 *    node's committed state go back, nor does a record count more guesses than the limit).
 * 5. A client reply that some node's log holds as an entry's answer leaves an HSM only once that
 *    entry is committed (a KE2 only after its guess counts): checked as the reply leaves, against
 *    every running node's Raft state and the committed entries seen so far.
 *
 * The committed entries are read from each HSM's committed state and, through a debug view of the
 * core's Raft log in this process, from every index up to its commit index. The simulator may read
 * what the operator cannot (NVRAM, the Raft log in memory); it uses that only to judge, never to act.
 */
import { decodeRaftEntry, type HsmCore, type NvramState, tipAtLeast } from "@bkv/hsm-core";
import { bytesEqual, toHex } from "@bkv/wire";
import type { PeerPacket, ReplyFrame, SimFleet, SimNode } from "./fleet.js";

/** What the checker reads of a core's Raft state (private to the core; a debug view in this process). */
interface RaftView {
  commitIndex: number;
  snapshot: { index: number; hash: Uint8Array };
  hashAt(i: number): Uint8Array | undefined;
  lastIndex(): number;
  entry(i: number): { index: number; bytes: Uint8Array; hash: Uint8Array } | undefined;
}

function raftOf(core: HsmCore): RaftView | null {
  const r = (core as unknown as { raft?: RaftView | null }).raft;
  return r !== undefined && r !== null && typeof r.hashAt === "function" ? r : null;
}

export interface SafetyOptions {
  guessLimit?: number;
  /** Check after every action the fleet reports (default), or only when check() is called. */
  everyAction?: boolean;
}

export class Safety {
  readonly violations: string[] = [];
  /** index -> (hash, first node seen committing it) */
  readonly committed = new Map<number, { hash: string; node: number }>();
  maxCommitted = 0;
  private readonly quorum: number;
  private readonly leaders = new Map<number, number>();
  private readonly seen = new Map<number, { core: HsmCore; upTo: number; state: number }>();
  private drops: { node: number; index: number; hash: string; to: number; why: string }[] = [];
  private readonly reported = new Set<string>();

  constructor(
    private readonly fleet: SimFleet,
    private readonly o: SafetyOptions = {},
  ) {
    this.quorum = Math.floor(fleet.nodes.length / 2) + 1;
    fleet.onNvramWrite.push((n, before, after) => this.nvramWritten(n, before, after));
    fleet.onPacket.push((n, p) => this.packet(n, p));
    fleet.onReply.push((n, m) => this.reply(n, m));
    if (o.everyAction !== false) fleet.onAction.push(() => this.check());
  }

  get ok(): boolean {
    return this.violations.length === 0;
  }

  private violate(msg: string, key = msg): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.violations.push(msg);
  }

  private packet(n: SimNode, p: PeerPacket): void {
    const m = p.msg;
    if (m === undefined) return;
    const nv = n.nvram();
    if (m.type === "app-resp" && m.success) {
      const tip = nv?.tip.index ?? 0;
      if (m.index > tip)
        this.violate(
          `node ${n.id} acknowledged entry ${m.index} past its NVRAM tip ${tip}`,
          `ack ${n.id} ${m.index}`,
        );
    }
    if (m.type === "vote-resp" && m.granted && !m.pre) {
      if (nv === null || nv.term !== m.term || nv.vote !== p.to)
        this.violate(
          `node ${n.id} granted its vote in term ${m.term} to ${p.to} without recording it in NVRAM`,
          `vote ${n.id} ${m.term}`,
        );
    }
  }

  /** 5. The entry whose answer this reply is must be committed by now (on some node). */
  private reply(n: SimNode, m: ReplyFrame): void {
    if (!m.ok) return;
    for (const holder of this.fleet.nodes) {
      const raft = holder.core === null ? null : raftOf(holder.core);
      if (raft === null) continue;
      for (let i = raft.snapshot.index + 1; i <= raft.lastIndex(); i++) {
        const e = raft.entry(i);
        if (e === undefined) break;
        const answer = decodeRaftEntry(e.bytes).answer;
        if (answer === undefined || !bytesEqual(answer.reply, m.envelope)) continue;
        if (this.isCommitted(i, e.hash)) continue;
        this.violate(
          `node ${n.id} sent a client reply that is the answer of entry ${i} (in node ${holder.id}'s log), not committed`,
          `reply ${i} ${toHex(e.hash)}`,
        );
      }
    }
  }

  /**
   * Entry i with this hash is committed if a running node has committed it (or has compacted past
   * index i, when its entry there can no longer be read), or if some running node's log holds it
   * and reaches a committed point (c, hash) with c >= i with that hash at c (entries are
   * hash-chained, so that log up to c is the committed one): a running node's commit index or
   * applied state, or a committed entry seen before.
   */
  private isCommitted(i: number, hash: Uint8Array): boolean {
    const logs: RaftView[] = [];
    const points: { index: number; hash: string }[] = [];
    for (const node of this.fleet.nodes) {
      const r = node.core === null ? null : raftOf(node.core);
      if (r === null || node.core === null) continue;
      if (r.commitIndex >= i && i <= r.snapshot.index) return true;
      const theirs = r.hashAt(i);
      if (theirs === undefined || !bytesEqual(theirs, hash)) continue;
      if (r.commitIndex >= i) return true;
      logs.push(r);
      const h = r.commitIndex === r.snapshot.index ? r.snapshot.hash : r.hashAt(r.commitIndex);
      if (h !== undefined) points.push({ index: r.commitIndex, hash: toHex(h) });
    }
    for (const node of this.fleet.nodes) {
      if (node.core === null) continue;
      const st = node.core.inspect().state;
      points.push({ index: st.index, hash: toHex(st.chainHash) });
      const r = raftOf(node.core);
      const h =
        r === null
          ? undefined
          : r.commitIndex === r.snapshot.index
            ? r.snapshot.hash
            : r.hashAt(r.commitIndex);
      if (r !== null && h !== undefined) points.push({ index: r.commitIndex, hash: toHex(h) });
    }
    for (const [index, c] of this.committed) if (index >= i) points.push({ index, hash: c.hash });
    return logs.some((log) =>
      points.some((p) => {
        if (p.index < i || p.index > log.lastIndex()) return false;
        const mine = p.index === log.snapshot.index ? log.snapshot.hash : log.hashAt(p.index);
        return mine !== undefined && toHex(mine) === p.hash;
      }),
    );
  }

  private nvramWritten(n: SimNode, before: NvramState | null, after: NvramState): void {
    if (before === null) return;
    if (after.term < before.term)
      this.violate(`node ${n.id}'s NVRAM term went back from ${before.term} to ${after.term}`);
    const b = before.tip;
    const a = after.tip;
    // A recover tip at least as up to date as the old tip keeps what was acknowledged in force.
    const covered = after.recover !== null && tipAtLeast(after.recover, b);
    if (!covered && (a.index < b.index || (a.index === b.index && toHex(a.hash) !== toHex(b.hash)))) {
      const v = n.core?.inspect();
      const why =
        v === undefined
          ? "at boot"
          : v.recovering
            ? "while recovering from a rollback"
            : "while a voter (snapshot or truncation)";
      this.drops.push({ node: n.id, index: b.index, hash: toHex(b.hash), to: a.index, why });
      if (this.drops.length > 1000) this.drops.splice(0, 500);
    }
  }

  private addCommitted(index: number, hash: string, node: number): void {
    const c = this.committed.get(index);
    if (c === undefined) {
      this.committed.set(index, { hash, node });
      if (index > this.maxCommitted) this.maxCommitted = index;
    } else if (c.hash !== hash) {
      this.violate(
        `nodes ${c.node} and ${node} committed different entries at index ${index}`,
        `diverge ${index}`,
      );
    }
  }

  /** Read every running node's committed entries and check the invariants. */
  check(): void {
    for (const n of this.fleet.nodes) {
      const core = n.core;
      if (core === null) continue;
      const v = core.inspect();
      if (v.role === "leader") {
        const l = this.leaders.get(v.term);
        if (l !== undefined && l !== n.id) this.violate(`two leaders in term ${v.term}: ${l} and ${n.id}`);
        this.leaders.set(v.term, n.id);
      }
      let seen = this.seen.get(n.id);
      if (seen === undefined || seen.core !== core) {
        seen = { core, upTo: 0, state: 0 };
        this.seen.set(n.id, seen);
      }
      const s = v.state;
      if (s.index > 0) this.addCommitted(s.index, toHex(s.chainHash), n.id);
      if (s.index < seen.state)
        this.violate(`node ${n.id}'s committed state went back from ${seen.state} to ${s.index}`);
      seen.state = Math.max(seen.state, s.index);
      const raft = raftOf(core);
      if (raft !== null) {
        for (let i = Math.max(seen.upTo, raft.snapshot.index) + 1; i <= raft.commitIndex; i++) {
          const h = raft.hashAt(i);
          if (h === undefined) break;
          this.addCommitted(i, toHex(h), n.id);
          seen.upTo = i;
        }
      }
      const limit = this.o.guessLimit;
      if (limit !== undefined)
        for (const [user, rec] of s.records)
          if (rec.guessesUsed > limit)
            this.violate(`${user} has ${rec.guessesUsed} guesses used on node ${n.id}`, `guesses ${user}`);
    }
    // 2. A dropped NVRAM tip whose entry turns out committed lost an acknowledged, committed entry.
    this.drops = this.drops.filter((d) => {
      const c = this.committed.get(d.index);
      if (c === undefined) return true; // not known yet: look again later
      if (c.hash === d.hash)
        this.violate(
          `node ${d.node} lowered its NVRAM tip from committed entry ${d.index} to ${d.to} ${d.why}`,
          `drop ${d.node} ${d.index} ${d.to}`,
        );
      return false;
    });
    // 3. The highest committed entry is held by a majority within their NVRAM tips.
    const c = this.maxCommitted;
    const h = this.committed.get(c)?.hash;
    if (c > 1 && h !== undefined) {
      let holders = 0;
      for (const n of this.fleet.nodes) {
        const nv = n.nvram();
        if (nv === null) continue;
        const r = nv.recover;
        if (r !== null && (r.index > c || (r.index === c && toHex(r.hash) === h))) {
          holders++;
          continue;
        }
        if (nv.tip.index < c) continue;
        if (nv.tip.index === c && toHex(nv.tip.hash) !== h) continue;
        const known = this.committed.get(nv.tip.index);
        if (known !== undefined && known.hash !== toHex(nv.tip.hash)) continue;
        const mine = n.core === null ? null : raftOf(n.core)?.hashAt(c);
        if (mine !== undefined && mine !== null && toHex(mine) !== h) continue;
        holders++;
      }
      if (holders < this.quorum)
        this.violate(
          `committed entry ${c} is held by ${holders} node(s) within their NVRAM tips, not a majority`,
          `majority ${c}`,
        );
    }
  }
}
