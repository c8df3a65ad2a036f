/**
 * A fleet of real HSM cores in one process, with the hosts' part played here: storage of sealed
 * entries, a network of peer messages under our control, ticks, crashes and restarts. The default
 * network delivers at once (for tests that want a working fleet); the simulator turns that off and
 * decides itself what to deliver, drop, duplicate, delay or replay.
 */
import { createHash } from "node:crypto";
import type { VaultTransport } from "@bkv/client";
import { type CoreOptions, HsmCore } from "@bkv/hsm-core";
import { type MemoryHsm, type MemoryPlatformOptions, memoryPlatform, newMemoryHsm } from "@bkv/hsm-software";
import {
  BkvError,
  decodeHsmToHost,
  ErrorCode,
  encodeEvidence,
  encodeHostToHsm,
  type HostToHsm,
  type HsmToHost,
  type SealedEntry,
} from "@bkv/wire";
import { Prng } from "./prng.js";

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

export interface Stored {
  snapshot: SealedEntry | null;
  entries: SealedEntry[];
}

export type ReplyFrame = HsmToHost & { type: "reply" };
export type Booted = HsmToHost & { type: "booted" };

export interface PeerPacket {
  id: number;
  from: number;
  to: number;
  bytes: Uint8Array;
}

export class SimNode {
  hsm: MemoryHsm;
  stored: Stored = { snapshot: null, entries: [] };
  core: HsmCore | null = null;
  booted: HsmToHost | null = null;
  /** When false, persist frames are stored but never acknowledged (a host that stalls). */
  ackPersist = true;
  /** Extra milliseconds added to this HSM's clock (a host that moves its clock). */
  clockSkew = 0;
  frames: HsmToHost[] = [];
  replies = new Map<number, (r: ReplyFrame | null) => void>();
  packages: { statement: Uint8Array; packages: Uint8Array[] } | null = null;
  signature: Uint8Array | null = null;

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
}

export class SimFleet {
  readonly nodes: SimNode[];
  readonly rng: Prng;
  /** Virtual time in ms; every HSM's clock reads it (plus its skew). */
  time: number;
  autoDeliver: boolean;
  /** The fleet's deployment evidence, from its genesis ceremony. */
  evidence: Uint8Array = new Uint8Array(0);
  /** Peer messages sent and not yet delivered (when autoDeliver is off). */
  inflight: PeerPacket[] = [];
  /** Every peer message ever sent, for replay attacks. */
  sent: PeerPacket[] = [];
  /** blocked(from, to): the network drops messages on this link. */
  blocked: (from: number, to: number) => boolean = () => false;
  private nextPacket = 1;
  private nextTag = 1;

  constructor(readonly options: FleetOptions) {
    this.rng = new Prng(options.seed ?? 1);
    this.time = options.startTime ?? Date.now();
    this.autoDeliver = options.autoDeliver ?? true;
    this.nodes = Array.from({ length: options.nodes }, (_, i) => new SimNode(i + 1, this.rng.fork()));
    const side = new Prng(((options.seed ?? 1) ^ 0x6368616c) >>> 0);
    for (const n of this.nodes) n.bootRandom = side.fork();
  }

  node(i: number): SimNode {
    const n = this.nodes[i - 1];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
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
        const s = n.stored;
        if (m.truncateFrom !== null) s.entries = s.entries.filter((e) => e.index < m.truncateFrom!);
        s.entries = s.entries.filter((e) => !m.entries.some((x) => x.index === e.index));
        s.entries.push(...m.entries);
        s.entries.sort((a, b) => a.index - b.index);
        if (m.snapshot !== null) {
          s.snapshot = m.snapshot;
          s.entries = s.entries.filter((e) => e.index > m.snapshot!.index);
        }
        if (n.ackPersist) {
          const core = n.core;
          const id = m.id;
          queueMicrotask(() => {
            if (n.core === core && core !== null) void this.deliverFrame(n, { type: "persisted", id });
          });
        }
        return;
      }
      case "peer": {
        const p: PeerPacket = { id: this.nextPacket++, from: n.id, to: m.to, bytes: m.bytes };
        this.sent.push(p);
        if (this.sent.length > 5000) this.sent.splice(0, 2500);
        if (this.autoDeliver) {
          queueMicrotask(() => void this.deliver(p));
        } else {
          this.inflight.push(p);
        }
        return;
      }
      case "reply": {
        const r = n.replies.get(m.tag);
        n.replies.delete(m.tag);
        r?.(m);
        return;
      }
      case "status":
        return;
    }
  }

  /** Hand one frame to a node's HSM (frames to one HSM are serialized by the core itself). */
  deliverFrame(n: SimNode, m: HostToHsm): Promise<void> {
    const core = n.core;
    if (core === null) return Promise.resolve();
    return core.receive(encodeHostToHsm(m));
  }

  /** Deliver a peer packet now, unless the link is blocked or the receiver is down. */
  async deliver(p: PeerPacket): Promise<void> {
    if (this.blocked(p.from, p.to)) return;
    const n = this.nodes[p.to - 1];
    if (n === undefined || n.core === null) return;
    await this.deliverFrame(n, { type: "peer", from: p.from, bytes: p.bytes });
  }

  // -------------------------------------------------------------------------------------------
  // Life cycle.

  /** Start node i's HSM from its storage and NVRAM. */
  async start(i: number): Promise<HsmToHost> {
    const n = this.node(i);
    n.booted = null;
    let booting = n.hsm.nvram === null;
    const platform = memoryPlatform(n.hsm, {
      ...this.options.platforms?.[i - 1],
      now: () => this.time + n.clockSkew,
      random: (k) => (booting ? n.bootRandom : n.random).bytes(k),
    });
    n.core = await HsmCore.create(platform, (b) => this.onFrame(n, b), this.options.core ?? {});
    await this.deliverFrame(n, { type: "boot", snapshot: n.stored.snapshot, entries: n.stored.entries });
    booting = false;
    await this.settle();
    return n.booted!;
  }

  /** Stop node i at once (a crash): pending client requests on it are lost. */
  crash(i: number): void {
    const n = this.node(i);
    n.core = null;
    for (const [, r] of n.replies) r(null);
    n.replies.clear();
    this.inflight = this.inflight.filter((p) => p.to !== i);
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
    f.evidence = encodeEvidence({
      statement: created.statement,
      signatures,
      transcript: [
        ...members.flatMap((m, k) => [
          { step: "attestation", node: k + 1, digest: sha256(m) },
          { step: "challenge", node: k + 1, digest: sha256(challenges[k]!) },
        ]),
        { step: "statement", node: 1, digest: sha256(created.statement) },
        ...signatures.map((sig, k) => ({ step: "signature", node: k + 1, digest: sha256(sig) })),
      ],
    });
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

  async tick(only?: number[]): Promise<void> {
    this.time += 50;
    for (const n of this.nodes) {
      if (n.core !== null && (only === undefined || only.includes(n.id)))
        await this.deliverFrame(n, { type: "tick" });
    }
    await this.settle(3);
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
    for (let t = 0; t < maxTicks; t++) {
      const l = this.leader();
      if (l !== 0) {
        const v = this.node(l).core!.inspect();
        if (v.state.term === v.term && v.commitIndex === v.state.index) return l;
      }
      await this.tick();
    }
    throw new Error("no leader emerged");
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
