/**
 * A fleet of real HSM cores in one process, with the hosts' part played here: storage of sealed
 * entries, a network of peer messages under our control, ticks, crashes and restarts. The default
 * network delivers at once (for tests that want a working fleet); the simulator turns that off and
 * decides itself what to deliver, drop, duplicate, delay or replay.
 */
import { createHash } from "node:crypto";
import type { VaultTransport } from "@bkv/client";
import {
  type CoreOptions,
  decodeNvram,
  decodePeerMessage,
  HsmCore,
  type NvramState,
  PeerChannel,
  type PeerMessage,
} from "@bkv/hsm-core";
import {
  ed25519PublicKeyOf,
  ed25519SignWith,
  type MemoryHsm,
  type MemoryPlatformOptions,
  memoryPlatform,
  newMemoryHsm,
} from "@bkv/hsm-software";
import {
  BkvError,
  decodeHsmToHost,
  ErrorCode,
  encodeEvidence,
  encodeHostToHsm,
  type HostToHsm,
  type HsmStats,
  type HsmToHost,
  logBundleMessage,
  MAX_TICKS_PER_FRAME,
  type SealedEntry,
  utf8,
  type WitnessPolicy,
} from "@bkv/wire";
import { Prng } from "./prng.js";

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

export interface Stored {
  snapshot: SealedEntry | null;
  entries: SealedEntry[];
}

export type ReplyFrame = HsmToHost & { type: "reply" };
export type Booted = HsmToHost & { type: "booted" };
export type PersistFrame = HsmToHost & { type: "persist" };

export interface PeerPacket {
  id: number;
  from: number;
  to: number;
  bytes: Uint8Array;
  /** Virtual time when it was sent. */
  at: number;
  /** How many times sender and receiver had booted when it was sent (replays across restarts). */
  fromBoot: number;
  toBoot: number;
  /**
   * DEBUG LABEL, for tests only: the Raft message inside (peer messages are encrypted; the operator
   * sees only sender, receiver, order and size). Taken from a hook on PeerChannel.seal in this
   * process; undefined if the hook could not decode it.
   */
  msg?: PeerMessage;
}

/** What a host writes of a persist frame: all of it, or (a crash between two writes) a part. */
export interface PartialWrite {
  /** Store only the first this many of its entries. */
  entries?: number;
  /** Leave out its truncation (default: apply it). */
  skipTruncate?: boolean;
  /** Leave out its snapshot (default: store it). */
  skipSnapshot?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Debug labels: the plaintext of every peer message sealed in this process, keyed by its header and
// tag, so the fleet can say what a packet is. Only the simulator and tests read them.

const labels = new Map<string, PeerMessage>();
let labelHook = false;

function labelKey(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 19);
  const tail = bytes.subarray(Math.max(19, bytes.length - 16));
  return Buffer.from(head).toString("hex") + Buffer.from(tail).toString("hex");
}

function hookLabels(): void {
  if (labelHook) return;
  labelHook = true;
  const seal = PeerChannel.prototype.seal;
  PeerChannel.prototype.seal = async function (this: PeerChannel, to: number, plaintext: Uint8Array) {
    const bytes = await seal.call(this, to, plaintext);
    if (bytes === null) return bytes;
    try {
      if (labels.size > 20_000) labels.clear();
      labels.set(labelKey(bytes), decodePeerMessage(plaintext));
    } catch {
      // Unlabelled: the simulator then treats the packet as opaque bytes.
    }
    return bytes;
  };
}

/** A short description of a labelled packet, for traces. */
export function describePacket(p: PeerPacket): string {
  const m = p.msg;
  const head = `${p.from}->${p.to}`;
  if (m === undefined) return `${head} (${p.bytes.length} bytes)`;
  switch (m.type) {
    case "app":
      return `${head} app t${m.term} prev ${m.prevIndex} +${m.entries.length} commit ${m.commit}`;
    case "app-resp":
      return `${head} app-resp t${m.term} ${m.success ? "ok" : "reject"} ${m.index}`;
    case "vote":
      return `${head} ${m.pre ? "pre" : ""}vote t${m.term} last ${m.lastIndex}/${m.lastTerm}`;
    case "vote-resp":
      return `${head} ${m.pre ? "pre" : ""}vote-resp t${m.term} ${m.granted ? "yes" : "no"}`;
    case "snap":
      return `${head} snap t${m.term} at ${m.index} commit ${m.commit}`;
    default:
      return `${head} ${m.type}`;
  }
}

export class SimNode {
  hsm: MemoryHsm;
  stored: Stored = { snapshot: null, entries: [] };
  core: HsmCore | null = null;
  booted: HsmToHost | null = null;
  /** Peer messages refused by this node's earlier HSM processes (their counters die with them). */
  refusedBefore = { forged: 0, replayed: 0 };
  /** When false, persist frames are stored but not confirmed (ids kept in `unconfirmed`). */
  ackPersist = true;
  /** Persist frames stored but not confirmed to the HSM (confirm later with fleet.confirm). */
  unconfirmed: number[] = [];
  /** When true, persist frames are not even stored: they wait in `pendingWrites` (fleet.write). */
  holdWrites = false;
  pendingWrites: PersistFrame[] = [];
  /** The next persist frame is written partially (or not at all), then the host crashes. */
  crashOnPersist: PartialWrite | null = null;
  /** The next NVRAM write throws (the HSM process then dies: fleet treats it as a crash). */
  failNvramWrite = false;
  /** Times this HSM was started (boot count, for replays across restarts). */
  boots = 0;
  /** Why this HSM process last died, if it did by itself. */
  died: string | null = null;
  /** Extra milliseconds added to this HSM's clock (a host that moves its clock). */
  clockSkew = 0;
  /**
   * The host holds this HSM's ticks back (fleet.tick counts them in `heldTicks` instead of sending
   * them); fleet.releaseTicks sends them in one Tick frame.
   */
  holdTicks = false;
  heldTicks = 0;
  frames: HsmToHost[] = [];
  replies = new Map<number, (r: ReplyFrame | null) => void>();
  packages: { statement: Uint8Array; packages: Uint8Array[] } | null = null;
  signature: Uint8Array | null = null;
  /** The last Stats frame this node's HSM sent (counts for the host's metrics). */
  stats: HsmStats | null = null;

  constructor(
    readonly id: number,
    seed: Prng,
  ) {
    this.hsm = newMemoryHsm();
    this.random = seed;
  }

  random: Prng;
  /**
   * Randomness for an uninitialized boot (the genesis challenge), apart from `random` so that the
   * rest of a simulation (elections, sessions, fleet secrets) draws the same bytes for a seed as
   * before HSMs had challenges, and the scenarios written against those seeds still hold.
   */
  bootRandom: Prng = new Prng(0);

  get up(): boolean {
    return this.core !== null;
  }

  /** The HSM's NVRAM record (the simulator may read it; the operator could not). */
  nvram(): NvramState | null {
    return this.hsm.nvram === null ? null : decodeNvram(this.hsm.nvram);
  }

  copyStorage(): Stored {
    return {
      snapshot:
        this.stored.snapshot === null
          ? null
          : { ...this.stored.snapshot, sealed: this.stored.snapshot.sealed.slice() },
      entries: this.stored.entries.map((e) => ({ index: e.index, sealed: e.sealed.slice() })),
    };
  }
}

export interface FleetOptions {
  nodes: number;
  guessLimit?: number;
  core?: CoreOptions;
  /** Seed for all randomness the fleet hands to its HSMs (session ids, election timeouts, fleet id). */
  seed?: number;
  /** Deliver peer messages at once (default true); the simulator sets false and delivers itself. */
  autoDeliver?: boolean;
  /** Starting virtual time in ms (default: now). */
  startTime?: number;
  /** Per node (1-based index - 1): platform options such as another vendor root or measurement. */
  platforms?: (Pick<MemoryPlatformOptions, "vendor" | "vendorRoots" | "measurement"> | undefined)[];
  /** Peer messages kept per link for replay (a uniform sample once more were sent; default 400). */
  recordPerLink?: number;
  /** Where the fleet is published, frozen at genesis: namespace (default "bkv-sim") and epoch (default 1). */
  namespace?: string;
  epoch?: number;
  /**
   * The Ed25519 seed of the stand-in transparency log whose key genesis freezes (default: a fixed
   * seed, so that a seed's simulation draws the same randomness as before). logSign signs with it.
   */
  logSeed?: Uint8Array;
  /**
   * The Ed25519 seed of the stand-in release key whose public key genesis freezes (default: a
   * fixed seed, drawing nothing from the simulation's seed).
   */
  releaseSeed?: Uint8Array;
  /** The highest guess limit a successor may have, frozen at genesis (default: the guess limit). */
  maxSuccessorGuessLimit?: number;
  /**
   * The log's witness policy genesis freezes (default: one stand-in witness, its key from a fixed
   * seed, threshold 1, drawing nothing from the simulation's seed).
   */
  witnessPolicy?: WitnessPolicy;
}

/** The stand-in log's key unless a test brings its own (fixed: it draws nothing from the seed). */
const DEFAULT_LOG_SEED = sha256(utf8("bkv simulator transparency log"));
/** The stand-in release key unless a test brings its own (fixed, like the log's). */
const DEFAULT_RELEASE_SEED = sha256(utf8("bkv simulator release key"));
/** The stand-in witness policy unless a test brings its own: one witness, a fixed key. */
const DEFAULT_WITNESS_POLICY: WitnessPolicy = {
  witnesses: [
    { name: "bkv-sim/witness-1", key: ed25519PublicKeyOf(sha256(utf8("bkv simulator witness 1"))) },
  ],
  threshold: 1,
};

/** Called on every NVRAM write of a node, with the record before and after. */
export type NvramWatcher = (n: SimNode, before: NvramState | null, after: NvramState) => void;
/** Called on every peer message a node's HSM emits, before the network sees it. */
export type PacketWatcher = (n: SimNode, p: PeerPacket) => void;
export type Route = "deliver" | "hold" | "drop";

export class SimFleet {
  readonly nodes: SimNode[];
  readonly rng: Prng;
  /** Virtual time in ms; every HSM's clock reads it (plus its skew). */
  time: number;
  autoDeliver: boolean;
  /** The fleet's deployment evidence, from its genesis ceremony. */
  evidence: Uint8Array = new Uint8Array(0);
  /** Where the fleet is published (frozen at genesis) and the stand-in log's raw Ed25519 key. */
  readonly namespace: string;
  readonly epoch: number;
  readonly logKey: Uint8Array;
  private readonly logSeed: Uint8Array;
  /** The stand-in release key's raw Ed25519 public key (frozen at genesis). */
  readonly releaseKey: Uint8Array;
  /** The stand-in witness policy (frozen at genesis). */
  readonly witnessPolicy: WitnessPolicy;
  /** Peer messages sent and not yet delivered (when autoDeliver is off). */
  inflight: PeerPacket[] = [];
  /**
   * With autoDeliver: decides each message as it is sent: deliver it, hold it (in `held`, for
   * release later, in any order), or drop it. Default: deliver.
   */
  route: ((p: PeerPacket) => Route) | null = null;
  held: PeerPacket[] = [];
  /** blocked(from, to): the network drops messages on this link. */
  blocked: (from: number, to: number) => boolean = () => false;
  /** Observers (the safety checker): NVRAM writes, emitted peer messages, and after every action. */
  onNvramWrite: NvramWatcher[] = [];
  onPacket: PacketWatcher[] = [];
  /** Called with every client reply an HSM sends its host, before the client gets it. */
  onReply: ((n: SimNode, m: ReplyFrame) => void)[] = [];
  onAction: ((f: SimFleet) => void)[] = [];
  /** Recorded peer messages per link: all of the first recordPerLink, then a uniform sample. */
  private recorded = new Map<string, { seen: number; sample: PeerPacket[] }>();
  private recordRng: Prng;
  private nextPacket = 1;
  private nextTag = 1;

  constructor(readonly options: FleetOptions) {
    this.rng = new Prng(options.seed ?? 1);
    this.recordRng = new Prng((options.seed ?? 1) ^ 0x5eed);
    hookLabels();
    this.time = options.startTime ?? Date.now();
    this.autoDeliver = options.autoDeliver ?? true;
    this.namespace = options.namespace ?? "bkv-sim";
    this.epoch = options.epoch ?? 1;
    this.logSeed = options.logSeed ?? DEFAULT_LOG_SEED;
    this.logKey = ed25519PublicKeyOf(this.logSeed);
    this.releaseKey = ed25519PublicKeyOf(options.releaseSeed ?? DEFAULT_RELEASE_SEED);
    this.witnessPolicy = options.witnessPolicy ?? DEFAULT_WITNESS_POLICY;
    this.nodes = Array.from({ length: options.nodes }, (_, i) => new SimNode(i + 1, this.rng.fork()));
    const side = new Prng(((options.seed ?? 1) ^ 0x6368616c) >>> 0);
    for (const n of this.nodes) n.bootRandom = side.fork();
  }

  /**
   * The stand-in log's bundle signature over an artifact (encoded) in a namespace and epoch
   * (default: the fleet's own), as the transparency log would sign it.
   */
  logSign(artifact: Uint8Array, namespace = this.namespace, epoch = this.epoch): Uint8Array {
    return ed25519SignWith(this.logSeed, logBundleMessage(namespace, epoch, sha256(artifact)));
  }

  node(i: number): SimNode {
    const n = this.nodes[i - 1];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
  }

  /** Every recorded peer message (see recordPerLink), oldest first: any may be replayed at any time. */
  get sent(): PeerPacket[] {
    const all: PeerPacket[] = [];
    for (const r of this.recorded.values()) all.push(...r.sample);
    return all.sort((a, b) => a.id - b.id);
  }

  /** Recorded messages of one link, oldest first. */
  sentOn(from: number, to: number): PeerPacket[] {
    return [...(this.recorded.get(`${from}>${to}`)?.sample ?? [])].sort((a, b) => a.id - b.id);
  }

  private record(p: PeerPacket): void {
    const key = `${p.from}>${p.to}`;
    let r = this.recorded.get(key);
    if (r === undefined) {
      r = { seen: 0, sample: [] };
      this.recorded.set(key, r);
    }
    r.seen++;
    const cap = this.options.recordPerLink ?? 400;
    if (r.sample.length < cap) r.sample.push(p);
    else {
      // Reservoir sampling (Algorithm R): every message sent on the link is kept with equal chance.
      const j = this.recordRng.int(r.seen);
      if (j < cap) r.sample[j] = p;
    }
  }

  /** Tell the observers an action happened (after ticks, deliveries, restarts, crashes). */
  observe(): void {
    for (const w of this.onAction) w(this);
  }

  // -------------------------------------------------------------------------------------------
  // Frames.

  private onFrame(n: SimNode, bytes: Uint8Array): void {
    const m = decodeHsmToHost(bytes);
    n.frames.push(m);
    if (n.frames.length > 200) n.frames.splice(0, 100);
    switch (m.type) {
      case "booted":
      case "failed":
        n.booted = m;
        return;
      case "genesis-packages":
        n.packages = { statement: m.statement, packages: m.packages };
        return;
      case "genesis-signature":
        n.signature = m.signature;
        return;
      case "persist": {
        if (n.crashOnPersist !== null) {
          const part = n.crashOnPersist;
          n.crashOnPersist = null;
          this.store(n, m, part);
          this.crash(n.id);
          return;
        }
        if (n.holdWrites) {
          n.pendingWrites.push(m);
          return;
        }
        this.store(n, m);
        this.stored(n, m.id);
        return;
      }
      case "peer": {
        const to = this.nodes[m.to - 1];
        const p: PeerPacket = {
          id: this.nextPacket++,
          from: n.id,
          to: m.to,
          bytes: m.bytes,
          at: this.time,
          fromBoot: n.boots,
          toBoot: to?.boots ?? 0,
        };
        const key = labelKey(m.bytes);
        const msg = labels.get(key);
        if (msg !== undefined) {
          labels.delete(key);
          p.msg = msg;
        }
        for (const w of this.onPacket) w(n, p);
        this.record(p);
        if (this.autoDeliver) {
          const route = this.route?.(p) ?? "deliver";
          if (route === "hold") this.held.push(p);
          else if (route === "deliver") queueMicrotask(() => void this.deliver(p));
        } else {
          this.inflight.push(p);
        }
        return;
      }
      case "reply": {
        for (const w of this.onReply) w(n, m);
        const r = n.replies.get(m.tag);
        n.replies.delete(m.tag);
        r?.(m);
        return;
      }
      case "status":
        return;
      case "stats": {
        const { type: _t, ...stats } = m;
        n.stats = stats;
        return;
      }
    }
  }

  /** Write a persist frame into a node's host storage, all of it or a part. */
  store(n: SimNode, m: PersistFrame, part: PartialWrite = {}): void {
    const s = n.stored;
    const entries = part.entries === undefined ? m.entries : m.entries.slice(0, part.entries);
    if (m.truncateFrom !== null && part.skipTruncate !== true)
      s.entries = s.entries.filter((e) => e.index < m.truncateFrom!);
    s.entries = s.entries.filter((e) => !entries.some((x) => x.index === e.index));
    s.entries.push(...entries);
    s.entries.sort((a, b) => a.index - b.index);
    if (m.snapshot !== null && part.skipSnapshot !== true) {
      s.snapshot = m.snapshot;
      s.entries = s.entries.filter((e) => e.index > m.snapshot!.index);
    }
  }

  /** The host stored persist frame id: confirm it now (ackPersist) or keep it unconfirmed. */
  private stored(n: SimNode, id: number): void {
    if (!n.ackPersist) {
      n.unconfirmed.push(id);
      return;
    }
    const core = n.core;
    queueMicrotask(() => {
      if (n.core === core && core !== null) void this.deliverFrame(n, { type: "persisted", id });
    });
  }

  /** Confirm stored but unconfirmed writes of node i (the oldest `count`, default all), late. */
  async confirm(i: number, count = Number.POSITIVE_INFINITY): Promise<number> {
    const n = this.node(i);
    const ids = n.unconfirmed.splice(0, Math.min(count, n.unconfirmed.length));
    for (const id of ids) await this.deliverFrame(n, { type: "persisted", id });
    await this.settle(2);
    this.observe();
    return ids.length;
  }

  /** Write node i's oldest held-back persist frame (all of it or a part); then confirm per ackPersist. */
  async write(i: number, part?: PartialWrite): Promise<boolean> {
    const n = this.node(i);
    const m = n.pendingWrites.shift();
    if (m === undefined) return false;
    this.store(n, m, part);
    if (part === undefined) this.stored(n, m.id);
    await this.settle(2);
    this.observe();
    return true;
  }

  /**
   * Hand one frame to a node's HSM (frames to one HSM are serialized by the core itself). An HSM
   * whose NVRAM write failed stops: its process is treated as crashed.
   */
  deliverFrame(n: SimNode, m: HostToHsm): Promise<void> {
    const core = n.core;
    if (core === null) return Promise.resolve();
    return core.receive(encodeHostToHsm(m)).catch((e: unknown) => {
      if (n.died?.startsWith("NVRAM")) {
        if (n.core === core) this.crash(n.id);
        return;
      }
      throw e;
    });
  }

  /**
   * Deliver a peer packet now, unless the receiver is down or the link is blocked (force: the
   * operator puts it on the receiver's wire itself, a replay past any cut).
   */
  async deliver(p: PeerPacket, force = false): Promise<void> {
    if (!force && this.blocked(p.from, p.to)) return;
    const n = this.nodes[p.to - 1];
    if (n === undefined || n.core === null) return;
    await this.deliverFrame(n, { type: "peer", from: p.from, bytes: p.bytes });
    this.observe();
  }

  /** Deliver held packets matching pred, oldest first (at most max of them); they leave `held`. */
  async release(pred: (p: PeerPacket) => boolean, max = Number.POSITIVE_INFINITY): Promise<PeerPacket[]> {
    const out: PeerPacket[] = [];
    for (const p of [...this.held]) {
      if (out.length >= max) break;
      if (!pred(p)) continue;
      this.held.splice(this.held.indexOf(p), 1);
      out.push(p);
      await this.deliver(p);
      await this.settle(2);
    }
    return out;
  }

  /** Forget held packets matching pred (the network lost them). */
  discard(pred: (p: PeerPacket) => boolean): number {
    const before = this.held.length;
    this.held = this.held.filter((p) => !pred(p));
    return before - this.held.length;
  }

  // -------------------------------------------------------------------------------------------
  // Life cycle.

  /** Start node i's HSM from its storage and NVRAM. */
  async start(i: number): Promise<HsmToHost> {
    const n = this.node(i);
    if (n.core !== null) throw new Error(`node ${i} is up`);
    n.booted = null;
    n.died = null;
    n.boots++;
    let booting = n.hsm.nvram === null;
    const platform = memoryPlatform(n.hsm, {
      ...this.options.platforms?.[i - 1],
      now: () => this.time + n.clockSkew,
      random: (k) => (booting ? n.bootRandom : n.random).bytes(k),
    });
    const write = platform.nvramWrite.bind(platform);
    platform.nvramWrite = async (data) => {
      if (n.failNvramWrite) {
        n.failNvramWrite = false;
        n.died = "NVRAM write failed";
        throw new Error("NVRAM write failed (injected by the simulator)");
      }
      const before = n.nvram();
      await write(data);
      const after = decodeNvram(data);
      for (const w of this.onNvramWrite) w(n, before, after);
    };
    // Frames from an HSM process that has since crashed are lost with it.
    let core: HsmCore | null = null;
    core = await HsmCore.create(
      platform,
      (b) => {
        if (n.core === core) this.onFrame(n, b);
      },
      this.options.core ?? {},
    );
    this.retire(n);
    n.core = core;
    await this.deliverFrame(n, { type: "boot", snapshot: n.stored.snapshot, entries: n.stored.entries });
    booting = false;
    await this.settle();
    this.observe();
    return n.booted ?? { type: "failed", code: "DIED", message: n.died ?? "the HSM process stopped" };
  }

  /** Keep what the node's current HSM process counted before it goes. */
  private retire(n: SimNode): void {
    const v = n.core?.inspect();
    if (v === undefined) return;
    n.refusedBefore.forged += v.peerForged;
    n.refusedBefore.replayed += v.peerReplayed;
  }

  /** Peer messages this node refused as forged or replayed, over all its HSM processes. */
  refused(i: number): { forged: number; replayed: number } {
    const n = this.node(i);
    const v = n.core?.inspect();
    return {
      forged: n.refusedBefore.forged + (v?.peerForged ?? 0),
      replayed: n.refusedBefore.replayed + (v?.peerReplayed ?? 0),
    };
  }

  /**
   * Stop node i at once (a crash): pending client requests on it are lost, and so are the host's
   * writes it had not made yet and its confirmations not yet sent. Host storage stays as it is.
   */
  crash(i: number): void {
    const n = this.node(i);
    this.retire(n);
    n.core = null;
    for (const [, r] of n.replies) r(null);
    n.replies.clear();
    n.pendingWrites = [];
    n.unconfirmed = [];
    n.crashOnPersist = null;
    // Ticks held for the dead process are lost with it (a host counts ticks from each boot).
    n.heldTicks = 0;
    this.inflight = this.inflight.filter((p) => p.to !== i);
    this.observe();
  }

  /** Crash node i, put `storage` back as its host storage (an old disk), and start it again. */
  async restoreAndRestart(i: number, storage: Stored): Promise<HsmToHost> {
    if (this.node(i).core !== null) this.crash(i);
    this.node(i).stored = storage;
    return this.start(i);
  }

  /** Create the fleet: start every HSM, run the genesis ceremony, and wait for a leader. */
  static async create(options: FleetOptions): Promise<SimFleet> {
    const f = new SimFleet(options);
    for (const n of f.nodes) {
      const b = await f.start(n.id);
      if (b.type !== "booted") throw new Error(`node ${n.id} failed to boot: ${JSON.stringify(b)}`);
    }
    const members = f.nodes.map((n) => (n.booted as Booted).identity);
    const challenges = f.nodes.map((n) => (n.booted as Booted).challenge);
    const creator = f.node(1);
    await f.deliverFrame(creator, {
      type: "genesis-create",
      members,
      challenges,
      guessLimit: options.guessLimit ?? 10,
      namespace: f.namespace,
      epoch: f.epoch,
      logKey: f.logKey,
      releaseKey: f.releaseKey,
      maxSuccessorGuessLimit: options.maxSuccessorGuessLimit ?? options.guessLimit ?? 10,
      witnessPolicy: f.witnessPolicy,
    });
    const created = creator.packages;
    if (created === null) throw new Error(`genesis failed: ${JSON.stringify(creator.booted)}`);
    const signatures: Uint8Array[] = [];
    for (const n of f.nodes) {
      await f.deliverFrame(n, {
        type: "genesis-join",
        package: created.packages[n.id - 1]!,
        statement: created.statement,
      });
      if (n.signature === null) throw new Error(`node ${n.id} refused to sign: ${JSON.stringify(n.booted)}`);
      signatures.push(n.signature);
    }
    f.evidence = encodeEvidence({ statement: created.statement, signatures });
    for (const n of f.nodes) {
      await f.deliverFrame(n, { type: "genesis-finish", signatures });
      await f.settle();
      if (n.booted?.type !== "booted" || n.booted.node !== n.id) throw new Error(`node ${n.id} did not join`);
    }
    await f.waitForLeader();
    return f;
  }

  /** Let queued microtasks and immediate deliveries run. */
  async settle(rounds = 20): Promise<void> {
    for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
  }

  /**
   * One tick of time for the nodes in `only` (default all; the others lose it). A node whose host
   * holds its ticks (holdTicks) gets none now: the tick is added to those it is owed.
   */
  async tick(only?: number[]): Promise<void> {
    this.time += 50;
    for (const n of this.nodes) {
      if (n.core === null || (only !== undefined && !only.includes(n.id))) continue;
      if (n.holdTicks) n.heldTicks++;
      else await this.deliverFrame(n, { type: "tick", ticks: 1 + this.takeHeld(n) });
    }
    await this.settle(3);
    this.observe();
  }

  private takeHeld(n: SimNode): number {
    const held = n.heldTicks;
    n.heldTicks = 0;
    return held;
  }

  /**
   * The host stops holding node i's ticks and sends those it held, plus `extra` it invents (a host
   * that hurries its HSM's clock), in one Tick frame (at most MAX_TICKS_PER_FRAME; none if zero).
   * Returns the count sent.
   */
  async releaseTicks(i: number, extra = 0): Promise<number> {
    const n = this.node(i);
    n.holdTicks = false;
    const ticks = Math.min(MAX_TICKS_PER_FRAME, this.takeHeld(n) + extra);
    if (n.core === null || ticks === 0) return 0;
    await this.deliverFrame(n, { type: "tick", ticks });
    await this.settle(3);
    this.observe();
    return ticks;
  }

  leader(): number {
    const leaders = this.nodes.filter((n) => n.core !== null && n.core.inspect().role === "leader");
    if (leaders.length === 0) return 0;
    // With partitions an old leader may linger; the highest term is the real one.
    leaders.sort((a, b) => b.core!.inspect().term - a.core!.inspect().term);
    return leaders[0]!.id;
  }

  /** Tick until some node leads and has committed an entry of its term (bounded). */
  async waitForLeader(maxTicks = 400): Promise<number> {
    const l = await this.tryWaitForLeader(maxTicks);
    if (l === 0) throw new Error("no leader emerged");
    return l;
  }

  /** Like waitForLeader, but 0 instead of an error when no leader emerged within maxTicks. */
  async tryWaitForLeader(maxTicks = 400, only?: number[]): Promise<number> {
    for (let t = 0; t < maxTicks; t++) {
      const l = this.leader();
      if (l !== 0) {
        const v = this.node(l).core!.inspect();
        if (v.state.term === v.term && v.commitIndex === v.state.index) return l;
      }
      await this.tick(only);
    }
    return 0;
  }

  vaultPublicKey(): Uint8Array {
    for (const n of this.nodes)
      if (n.booted?.type === "booted" && n.booted.vaultPublicKey.length > 0) return n.booted.vaultPublicKey;
    throw new Error("no member has booted");
  }

  // -------------------------------------------------------------------------------------------
  // Clients.

  /** Send a client envelope to node i's HSM; resolves with its reply, or null if the node crashed. */
  request(i: number, envelope: Uint8Array): Promise<ReplyFrame | null> {
    const n = this.node(i);
    if (n.core === null) return Promise.resolve(null);
    const tag = this.nextTag++;
    return new Promise((resolve) => {
      n.replies.set(tag, resolve);
      void this.deliverFrame(n, { type: "client", tag, envelope });
    });
  }

  /** A VaultTransport into node i (default: the current leader, else node 1), ticking while it waits. */
  transport(i?: number): VaultTransport {
    return {
      send: async (envelope) => {
        const target = i ?? (this.leader() || 1);
        const p = this.request(target, envelope);
        let done: ReplyFrame | null | undefined;
        void p.then((r) => {
          done = r;
        });
        for (let t = 0; t < 400 && done === undefined; t++) {
          await this.settle(2);
          if (done === undefined) await this.tick();
        }
        if (done === undefined || done === null)
          throw new BkvError(ErrorCode.Unavailable, "no answer from the fleet");
        if (done.ok) return { response: done.envelope };
        throw new BkvError(
          done.code === ErrorCode.Unavailable ? ErrorCode.Unavailable : ErrorCode.Invalid,
          done.message,
        );
      },
    };
  }
}
