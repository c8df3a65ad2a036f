/**
 * Raft at message level, as text scripts (etcd-raft's interaction tests, in the datadriven format
 * of datadriven.ts): the real `Raft` of hsm-core with no core around it; this interpreter plays the
 * core's part (NVRAM, the host's storage and its confirmations, boot checks through the core's own
 * `checkStorage`) and the network, one step at a time, so a script can hold back one rejection,
 * replay one old append, let the host store without confirming, restore an old disk, and restart.
 *
 * Commands (N, A, B are node numbers; K a count):
 *
 *     cluster nodes=3                   genesis: every node holds entry 1 (term 0), durable
 *     tick [node=N] [n=K]               K ticks on node N (default: every node that is up)
 *     propose node=N                    the leader appends an entry: `index K`, or `not leader`
 *     ready [node=N]                    hand out Raft's output: NVRAM term/vote, the host stores
 *                                       entries at once (unconfirmed), messages go in flight
 *     persisted [node=N]                the host confirms what it stored: NVRAM tip, then durable
 *     deliver [from=A] [to=B] [type=T] [id=K]   deliver matching messages in flight, oldest first
 *     drop [from=A] [to=B] [type=T] [id=K]      lose them
 *     hold id=K                         the host holds message K back: no deliver or drop takes it
 *     release id=K                      put it back in flight
 *     replay id=K                       deliver a message sent earlier, again
 *     network                           the messages in flight
 *     compact node=N                    snapshot the committed log (the host drops entries below)
 *     crash node=N                      stop it (its unconfirmed writes stay on the host's disk)
 *     restart node=N                    boot from host storage and NVRAM (checkStorage)
 *     backup node=N name=X              copy its host storage
 *     restore node=N name=X             put copy X back (N must be down)
 *     status                            one line per node
 *     log node=N                        its log, index/term
 *
 * A message names its sender's boot and the receiver's boot it is meant for, as the peer channel
 * does; one meant for an earlier boot of its receiver is refused (`refused: for an earlier boot`).
 * A delivered message prints as `#id A->B type fields`, and whatever it made the receiver send is
 * in flight until delivered.
 */

import { createHash } from "node:crypto";
import {
  checkStorage,
  encodeRaftEntry,
  type LogRecord,
  type LogTip,
  type PeerMessage,
  Raft,
  type SnapshotMeta,
} from "@bkv/hsm-core";
import { bytesEqual } from "@bkv/wire";
import { type CaseResult, parseScript, runScript, type Script, ScriptError } from "./datadriven.js";

export type RaftCommand =
  | { kind: "cluster"; nodes: number }
  | { kind: "tick"; node: number | null; n: number }
  | { kind: "propose" | "compact" | "crash" | "restart" | "log"; node: number }
  | { kind: "ready" | "persisted"; node: number | null }
  | { kind: "deliver" | "drop"; filter: Filter }
  | { kind: "replay" | "hold" | "release"; id: number }
  | { kind: "network" | "status" }
  | { kind: "backup" | "restore"; node: number; name: string };

interface Filter {
  from: number | null;
  to: number | null;
  type: string | null;
  id: number | null;
}

const ARGS: Record<RaftCommand["kind"], { args: string[]; required: string[] }> = {
  cluster: { args: ["nodes"], required: ["nodes"] },
  tick: { args: ["node", "n"], required: [] },
  propose: { args: ["node"], required: ["node"] },
  compact: { args: ["node"], required: ["node"] },
  crash: { args: ["node"], required: ["node"] },
  restart: { args: ["node"], required: ["node"] },
  log: { args: ["node"], required: ["node"] },
  ready: { args: ["node"], required: [] },
  persisted: { args: ["node"], required: [] },
  deliver: { args: ["from", "to", "type", "id"], required: [] },
  drop: { args: ["from", "to", "type", "id"], required: [] },
  replay: { args: ["id"], required: ["id"] },
  hold: { args: ["id"], required: ["id"] },
  release: { args: ["id"], required: ["id"] },
  network: { args: [], required: [] },
  status: { args: [], required: [] },
  backup: { args: ["node", "name"], required: ["node", "name"] },
  restore: { args: ["node", "name"], required: ["node", "name"] },
};

const TYPES = ["app", "app-resp", "vote", "vote-resp", "snap"];

function parseRaftCommand(text: string): RaftCommand {
  const [name, ...rest] = text.trim().split(/\s+/);
  const spec = ARGS[name as RaftCommand["kind"]];
  if (spec === undefined)
    throw new ScriptError(`unknown command "${name}" (known: ${Object.keys(ARGS).join(", ")})`);
  const kind = name as RaftCommand["kind"];
  const v = new Map<string, string>();
  for (const t of rest) {
    const eq = t.indexOf("=");
    const key = t.slice(0, eq);
    if (eq < 0 || !spec.args.includes(key)) throw new ScriptError(`${kind}: unexpected argument "${t}"`);
    if (v.has(key)) throw new ScriptError(`${kind}: argument "${key}" given twice`);
    v.set(key, t.slice(eq + 1));
  }
  for (const r of spec.required) if (!v.has(r)) throw new ScriptError(`${kind}: missing argument ${r}=`);
  const num = (key: string): number | null => {
    const s = v.get(key);
    if (s === undefined) return null;
    if (!/^[1-9][0-9]{0,5}$/.test(s))
      throw new ScriptError(`${kind}: ${key}=${s}: expected a positive number`);
    return Number(s);
  };
  const type = v.get("type") ?? null;
  if (type !== null && !TYPES.includes(type))
    throw new ScriptError(`${kind}: type=${type}: expected one of ${TYPES.join(", ")}`);
  switch (kind) {
    case "cluster":
      return { kind, nodes: num("nodes")! };
    case "tick":
      return { kind, node: num("node"), n: num("n") ?? 1 };
    case "propose":
    case "compact":
    case "crash":
    case "restart":
    case "log":
      return { kind, node: num("node")! };
    case "ready":
    case "persisted":
      return { kind, node: num("node") };
    case "deliver":
    case "drop":
      return { kind, filter: { from: num("from"), to: num("to"), type, id: num("id") } };
    case "replay":
    case "hold":
    case "release":
      return { kind, id: num("id")! };
    case "network":
    case "status":
      return { kind };
    case "backup":
    case "restore":
      return { kind, node: num("node")!, name: v.get("name")! };
  }
}

export function parseRaftScript(text: string, file: string): Script<RaftCommand> {
  return parseScript(text, file, "cluster", parseRaftCommand);
}

// ---------------------------------------------------------------------------------------------

interface Storage {
  snapshot: { meta: SnapshotMeta; state: Uint8Array } | null;
  log: LogRecord[];
}

interface Node {
  id: number;
  raft: Raft | null;
  epoch: number;
  storage: Storage;
  nv: { term: number; vote: number; tip: LogTip; recover: LogTip | null };
  /** Writes the host stored and has not confirmed yet: the tip each would make durable. */
  unconfirmed: { tip: number; hash: Uint8Array }[];
}

interface Packet {
  id: number;
  from: number;
  to: number;
  fromEpoch: number;
  toEpoch: number;
  msg: PeerMessage;
}

const ZERO = new Uint8Array(32);
const hash = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

function entryBytes(index: number, term: number, prevHash: Uint8Array, time: number): Uint8Array {
  return encodeRaftEntry({ index, term, prevHash, time, requestId: new Uint8Array(0), ops: [] });
}

function copyStorage(s: Storage): Storage {
  return { snapshot: s.snapshot, log: [...s.log] };
}

function pos(index: number, term: number): string {
  return `${index}/${term}`;
}

export function describeMessage(m: PeerMessage): string {
  switch (m.type) {
    case "app":
      return `app t${m.term} prev=${pos(m.prevIndex, m.prevTerm)} [${m.entries.map((e) => pos(e.index, e.term)).join(" ")}] commit=${m.commit}`;
    case "app-resp":
      return m.success
        ? `app-resp t${m.term} ok index=${m.index}`
        : `app-resp t${m.term} reject index=${m.index} hint=${m.hint}`;
    case "vote":
    case "vote-resp":
      return m.type === "vote"
        ? `vote${m.pre ? " pre" : ""} t${m.term} last=${pos(m.lastIndex, m.lastTerm)}`
        : `vote-resp${m.pre ? " pre" : ""} t${m.term} ${m.granted ? "granted" : "denied"}`;
    case "snap":
      return `snap t${m.term} at=${pos(m.index, m.snapTerm)} commit=${m.commit}`;
    default:
      return m.type;
  }
}

export class RaftInterpreter {
  private nodes: Node[] = [];
  private inflight: Packet[] = [];
  private held: Packet[] = [];
  private sent = new Map<number, Packet>();
  private backups = new Map<string, Storage>();
  private nextId = 1;
  private proposals = 0;

  private node(i: number): Node {
    const n = this.nodes[i - 1];
    if (n === undefined) throw new ScriptError(`no node ${i}`);
    return n;
  }

  private up(n: Node): Raft {
    if (n.raft === null) throw new ScriptError(`node ${n.id} is down`);
    return n.raft;
  }

  private newRaft(n: Node, durableIndex: number): Raft {
    const s = n.storage;
    const meta = s.snapshot?.meta ?? { index: 0, term: 0, hash: ZERO };
    return new Raft(
      {
        id: n.id,
        members: this.nodes.map((m) => m.id),
        electionTicks: 10,
        heartbeatTicks: 2,
        random: () => 0,
        hash,
        noop: (index, term, prevHash) => entryBytes(index, term, prevHash, 0),
      },
      {
        term: n.nv.term,
        vote: n.nv.vote,
        snapshot: meta,
        snapshotState: s.snapshot?.state ?? null,
        log: [...s.log],
        durableIndex,
        recover: n.nv.recover === null ? null : { index: n.nv.recover.index, term: n.nv.recover.term },
      },
    );
  }

  async run(c: RaftCommand): Promise<string[]> {
    if (c.kind !== "cluster" && this.nodes.length === 0) throw new ScriptError("no cluster yet");
    switch (c.kind) {
      case "cluster": {
        const genesis = entryBytes(1, 0, ZERO, 0);
        const rec: LogRecord = { index: 1, term: 0, bytes: genesis, hash: hash(genesis) };
        for (let i = 1; i <= c.nodes; i++) {
          this.nodes.push({
            id: i,
            raft: null,
            epoch: 1,
            storage: { snapshot: null, log: [rec] },
            nv: { term: 0, vote: 0, tip: { index: 1, term: 0, hash: rec.hash }, recover: null },
            unconfirmed: [],
          });
        }
        for (const n of this.nodes) n.raft = this.newRaft(n, 1);
        return [];
      }
      case "tick": {
        const targets = c.node === null ? this.nodes.filter((n) => n.raft !== null) : [this.node(c.node)];
        for (const n of targets) for (let k = 0; k < c.n; k++) this.up(n).tick();
        return [];
      }
      case "propose": {
        const raft = this.up(this.node(c.node));
        const t = 1000 + ++this.proposals;
        const index = raft.propose((index, term, prevHash) => entryBytes(index, term, prevHash, t));
        return [index === null ? "not leader" : `index ${index}`];
      }
      case "ready": {
        const targets = c.node === null ? this.nodes.filter((n) => n.raft !== null) : [this.node(c.node)];
        for (const n of targets) this.ready(n);
        return [];
      }
      case "persisted": {
        const targets = c.node === null ? this.nodes.filter((n) => n.raft !== null) : [this.node(c.node)];
        for (const n of targets) this.persisted(n);
        return [];
      }
      case "deliver":
      case "drop": {
        const out: string[] = [];
        const f = c.filter;
        const match = (p: Packet) =>
          (f.from === null || p.from === f.from) &&
          (f.to === null || p.to === f.to) &&
          (f.type === null || p.msg.type === f.type) &&
          (f.id === null || p.id === f.id);
        const chosen = this.inflight.filter(match);
        this.inflight = this.inflight.filter((p) => !match(p));
        for (const p of chosen) {
          if (c.kind === "drop") out.push(`dropped ${this.show(p)}`);
          else out.push(...this.deliver(p));
        }
        return out;
      }
      case "replay": {
        const p = this.sent.get(c.id);
        if (p === undefined) throw new ScriptError(`no message #${c.id} was sent`);
        return this.deliver(p);
      }
      case "hold": {
        const p = this.inflight.find((x) => x.id === c.id);
        if (p === undefined) throw new ScriptError(`message #${c.id} is not in flight`);
        this.inflight = this.inflight.filter((x) => x !== p);
        this.held.push(p);
        return [];
      }
      case "release": {
        const p = this.held.find((x) => x.id === c.id);
        if (p === undefined) throw new ScriptError(`message #${c.id} is not held`);
        this.held = this.held.filter((x) => x !== p);
        this.inflight.push(p);
        return [];
      }
      case "network":
        return [...this.inflight.map((p) => this.show(p)), ...this.held.map((p) => `${this.show(p)} (held)`)];
      case "compact": {
        const n = this.node(c.node);
        const raft = this.up(n);
        const index = raft.commitIndex;
        const meta = { index, term: raft.termAt(index)!, hash: raft.hashAt(index)! };
        const state = new TextEncoder().encode(`state@${index}`);
        raft.compact(meta, state);
        n.storage = { snapshot: { meta, state }, log: n.storage.log.filter((r) => r.index > index) };
        return [`snapshot at ${pos(index, meta.term)}`];
      }
      case "crash": {
        const n = this.node(c.node);
        n.raft = null;
        n.unconfirmed = [];
        return [];
      }
      case "restart": {
        const n = this.node(c.node);
        if (n.raft !== null) throw new ScriptError(`node ${n.id} is up (crash it first)`);
        const meta = n.storage.snapshot?.meta ?? { index: 0, term: 0, hash: ZERO };
        const v = checkStorage(n.nv, meta, n.storage.log);
        n.epoch++;
        n.nv = { ...n.nv, recover: v.recover };
        n.raft = this.newRaft(n, v.durableIndex);
        const r = v.recover;
        return [r === null ? "booted" : `booted recovering until ${pos(r.index, r.term)}`];
      }
      case "backup":
        this.backups.set(c.name, copyStorage(this.node(c.node).storage));
        return [];
      case "restore": {
        const n = this.node(c.node);
        if (n.raft !== null) throw new ScriptError(`node ${n.id} is up (crash it first)`);
        const b = this.backups.get(c.name);
        if (b === undefined) throw new ScriptError(`no backup named ${c.name}`);
        n.storage = copyStorage(b);
        return [];
      }
      case "status":
        return this.nodes.map((n) => this.statusLine(n));
      case "log": {
        const n = this.node(c.node);
        const s = n.raft === null ? n.storage : null;
        const snap = s?.snapshot?.meta ?? (n.raft?.snapshot.index ? n.raft.snapshot : null);
        const log = s !== null ? s.log : n.raft!.entries(n.raft!.snapshot.index + 1, n.raft!.lastIndex());
        const parts = log.map((r) => pos(r.index, r.term));
        if (snap !== null && snap.index > 0) parts.unshift(`snap@${pos(snap.index, snap.term)}`);
        return [parts.join(" ") || "(empty)"];
      }
    }
  }

  private statusLine(n: Node): string {
    const tip = `nvram tip ${pos(n.nv.tip.index, n.nv.tip.term)}`;
    const rec =
      n.nv.recover === null ? "" : ` recovering until ${pos(n.nv.recover.index, n.nv.recover.term)}`;
    const r = n.raft;
    if (r === null) {
      const last = n.storage.log.at(-1) ?? n.storage.snapshot?.meta ?? { index: 0, term: 0 };
      return `node ${n.id}: down, storage ends at ${pos(last.index, last.term)}, ${tip}${rec}`;
    }
    return (
      `node ${n.id}: ${r.role} term ${r.term} commit ${r.commitIndex} last ${pos(r.lastIndex(), r.lastTerm())} ` +
      `durable ${r.durableIndex}, ${tip}${rec}`
    );
  }

  private show(p: Packet): string {
    return `#${p.id} ${p.from}->${p.to} ${describeMessage(p.msg)}`;
  }

  /** The core's processReady: NVRAM hard state, the host stores what to persist, messages go out. */
  private ready(n: Node): void {
    const raft = this.up(n);
    while (raft.hasReady()) {
      const rd = raft.ready();
      if (rd.hardState !== null) n.nv = { ...n.nv, term: rd.hardState.term, vote: rd.hardState.vote };
      const s = n.storage;
      if (rd.truncateFrom !== null) s.log = s.log.filter((r) => r.index < rd.truncateFrom!);
      s.log = s.log.filter((r) => !rd.entries.some((e) => e.index === r.index));
      s.log.push(...rd.entries);
      s.log.sort((a, b) => a.index - b.index);
      if (rd.snapshot !== null) {
        s.snapshot = rd.snapshot;
        s.log = s.log.filter((r) => r.index > rd.snapshot!.meta.index);
      }
      if (rd.entries.length > 0 || rd.truncateFrom !== null || rd.snapshot !== null) {
        const last = rd.entries.at(-1);
        const tip =
          last?.index ??
          (rd.snapshot !== null && rd.truncateFrom === 0
            ? rd.snapshot.meta.index
            : rd.truncateFrom !== null
              ? rd.truncateFrom - 1
              : raft.durableIndex);
        n.unconfirmed.push({ tip, hash: raft.hashAt(tip) ?? ZERO });
      }
      for (const out of rd.messages) {
        const to = this.node(out.to);
        const p: Packet = {
          id: this.nextId++,
          from: n.id,
          to: out.to,
          fromEpoch: n.epoch,
          toEpoch: to.epoch,
          msg: out.msg,
        };
        this.sent.set(p.id, p);
        this.inflight.push(p);
      }
    }
    this.maybeRecovered(n);
  }

  /** The host confirms its writes: NVRAM records each tip first, then Raft counts it durable. */
  private persisted(n: Node): void {
    const raft = this.up(n);
    for (const u of n.unconfirmed) {
      const h = raft.hashAt(u.tip);
      const term = raft.termAt(u.tip);
      if (h === undefined || term === undefined || !bytesEqual(h, u.hash)) continue;
      n.nv = { ...n.nv, tip: { index: u.tip, term, hash: h } };
      raft.advanceDurable(u.tip);
    }
    n.unconfirmed = [];
    this.maybeRecovered(n);
  }

  private maybeRecovered(n: Node): void {
    const raft = n.raft;
    if (raft?.recoverReached()) {
      n.nv = { ...n.nv, recover: null };
      raft.clearRecover();
    }
  }

  private deliver(p: Packet): string[] {
    const to = this.node(p.to);
    if (to.raft === null) return [`lost ${this.show(p)} (node ${p.to} is down)`];
    if (p.toEpoch !== to.epoch) return [`refused ${this.show(p)}: for an earlier boot`];
    to.raft.step(p.from, p.msg, p.fromEpoch);
    return [this.show(p)];
  }
}

export async function runRaftScript(s: Script<RaftCommand>): Promise<CaseResult<RaftCommand>[]> {
  const interp = new RaftInterpreter();
  return runScript(s, (c) => interp.run(c));
}
