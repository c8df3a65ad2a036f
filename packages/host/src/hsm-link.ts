/**
 * The host's link to its HSM: spawns the HSM process, speaks the HSM API over its stdin/stdout,
 * stores what the HSM asks it to persist, relays its peer messages, drives its clock with ticks (hsm-clock.ts) and
 * matches replies to client requests. If the HSM process dies, pending requests fail as unavailable
 * and the HSM is started again from storage.
 */
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import {
  BkvError,
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  FrameBatch,
  FrameDecoder,
  type HostToHsm,
  type HsmStats,
  type HsmStatus,
  type HsmToHost,
  MAX_PEER_MESSAGE_BYTES,
} from "@bkv/wire";
import { HsmClock } from "./hsm-clock.js";
import { spawnHsm } from "./hsm-process.js";
import type { Logger } from "./logger.js";
import type { HostStorage } from "./storage.js";

/** Bytes queued on the HSM's stdin beyond which peer messages are dropped. */
const MAX_QUEUED_TO_HSM = 4 * MAX_PEER_MESSAGE_BYTES;

/**
 * Exit codes by which an HSM process refuses to start (hsm-software: provisioned.ts,
 * clean-start.ts, folder-lock.ts; hsm-pkcs11: module-check.ts), and what the host reports for them.
 */
const HSM_EXIT_REFUSALS: Record<number, { code: string; message: string }> = {
  73: {
    code: ErrorCode.Unavailable,
    message: "another live process holds the HSM's folder (HSM_DIR/hsm.lock): one HSM process per folder",
  },
  75: {
    code: ErrorCode.Attestation,
    message:
      "the HSM needs an attestation of its keys and core: provision it (its NVRAM was empty or its core changed)",
  },
  76: {
    code: ErrorCode.Attestation,
    message:
      "the HSM's PKCS#11 module is not the one its attestation names (HSM_DIR/pkcs11-module changed): provision it for this module",
  },
  78: { code: ErrorCode.HostError, message: "the HSM refused an unclean start (environment or Node flags)" },
};

export type HsmReply = { ok: true; envelope: Uint8Array } | { ok: false; code: string; message: string };

export interface HsmLinkOptions {
  /**
   * argv of the HSM process, e.g. [process.execPath, ".../hsm-software/dist/main.js", "--dir", hsmDir,
   * "--core", coreFile]. It runs with an empty environment (spawnHsm).
   */
  command: string[];
  storage: HostStorage;
  log: Logger;
  /** Called for each message the HSM sends to another member. */
  onPeer?: (to: number, bytes: Uint8Array) => void;
  tickMs?: number;
  requestTimeoutMs?: number;
  restartDelayMs?: number;
}

export type HsmState =
  | { kind: "starting" }
  | { kind: "uninitialized"; identity: Uint8Array; challenge: Uint8Array }
  | {
      kind: "serving";
      node: number;
      fleetId: Uint8Array;
      vaultPublicKey: Uint8Array;
      guessesAllowed: number;
      recovering: boolean;
    }
  | { kind: "failed"; code: string; message: string };

export class HsmLink extends EventEmitter {
  private child: ChildProcess | null = null;
  /** Frames for the current child, written together once per turn of the event loop (one write). */
  private out: FrameBatch | null = null;
  private nextTag = 1;
  private pending = new Map<number, { resolve: (r: HsmReply) => void; timer: NodeJS.Timeout }>();
  private statusWaiters: ((s: HsmStatus | null) => void)[] = [];
  private statsWaiters: ((s: HsmStats | null) => void)[] = [];
  /** For the metrics: how long each Persist frame took to store (seconds). */
  onPersistTimed: ((seconds: number) => void) | null = null;
  /** HSM processes that exited while the host wanted them running. */
  restarts = 0;
  /** Drives the HSM's ticks (held back until its Wake tick; see hsm-clock.ts). */
  private readonly clock: HsmClock;
  /** Asks the HSM for its Raft status now and then, so the host can point clients at the leader. */
  private statusPoll: NodeJS.Timeout | null = null;
  private stopping = false;
  state: HsmState = { kind: "starting" };
  /** Peer messages dropped because the HSM's input was full. */
  peerDropped = 0;
  lastStatus: HsmStatus | null = null;
  /** The genesis step in progress (admin listener): what answers it. */
  private genesisWaiter: {
    expect: "genesis-packages" | "genesis-signature" | "booted";
    resolve: (m: HsmToHost) => void;
    reject: (e: BkvError) => void;
  } | null = null;

  constructor(private readonly opts: HsmLinkOptions) {
    super();
    this.clock = new HsmClock(opts.tickMs ?? 50, (ticks) =>
      this.out?.push(encodeHostToHsm({ type: "tick", ticks })),
    );
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const child = spawnHsm(this.opts.command);
    this.child = child;
    // A batch per child: frames queued for a child that died are never written to the next one.
    this.out?.discard();
    this.out = new FrameBatch(
      (bytes) => child.stdin?.write(bytes),
      (flush) => setImmediate(flush),
    );
    this.state = { kind: "starting" };
    const decoder = new FrameDecoder();
    child.stdout!.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)))
        this.onFrame(f);
    });
    child.stdin!.on("error", () => {});
    child.on("exit", (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      this.clock.stop();
      this.out?.discard();
      this.out = null;
      this.failPending("HSM restarted");
      this.failGenesis(new BkvError(ErrorCode.Unavailable, "the HSM process exited during the genesis step"));
      if (this.stopping) return;
      this.restarts++;
      const refusal = HSM_EXIT_REFUSALS[code ?? -1];
      if (refusal !== undefined) {
        // It cannot serve until the operator acts (provisions it, fixes its start); keep trying.
        this.state = { kind: "failed", ...refusal };
        this.opts.log.error({ event: "hsm-exit", code, reason: refusal.message }, "HSM refuses to start");
        this.emit("failed");
      } else {
        this.opts.log.warn({ event: "hsm-exit", code, signal }, "HSM process exited; starting it again");
        this.state = { kind: "starting" };
      }
      setTimeout(() => {
        if (!this.stopping) this.start();
      }, this.opts.restartDelayMs ?? 500);
    });
    const stored = this.opts.storage.load();
    this.opts.log.info(
      {
        event: "hsm-boot",
        pid: child.pid,
        entries: stored.entries.length,
        snapshot: stored.snapshot?.index ?? 0,
      },
      "booting HSM from host storage",
    );
    this.send({ type: "boot", snapshot: stored.snapshot, entries: stored.entries });
    this.clock.restart();
    if (this.statusPoll === null) {
      this.statusPoll = setInterval(() => this.send({ type: "status" }), 10 * (this.opts.tickMs ?? 50));
      this.statusPoll.unref();
    }
  }

  private failPending(message: string): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ ok: false, code: ErrorCode.Unavailable, message });
    }
    this.pending.clear();
    for (const w of this.statusWaiters) w(null);
    this.statusWaiters = [];
    for (const w of this.statsWaiters) w(null);
    this.statsWaiters = [];
  }

  send(m: HostToHsm): void {
    if (this.child === null) return;
    // The ticks owed go first: the HSM reads every frame with its clock up to date.
    if (m.type !== "tick") this.clock.flush();
    this.out?.push(encodeHostToHsm(m));
  }

  private onFrame(bytes: Uint8Array): void {
    let m: HsmToHost;
    try {
      m = decodeHsmToHost(bytes);
    } catch (e) {
      this.opts.log.error(
        { event: "hsm-bad-frame", error: (e as Error).message },
        "undecodable frame from HSM",
      );
      return;
    }
    switch (m.type) {
      case "booted":
        this.state =
          m.node === 0
            ? { kind: "uninitialized", identity: m.identity, challenge: m.challenge }
            : {
                kind: "serving",
                node: m.node,
                fleetId: m.fleetId,
                vaultPublicKey: m.vaultPublicKey,
                guessesAllowed: m.guessesAllowed,
                recovering: m.recovering,
              };
        this.opts.log.info({ event: "hsm-booted", node: m.node, recovering: m.recovering }, "HSM booted");
        this.emit("booted");
        if (this.genesisWaiter?.expect === "booted") this.answerGenesis(m);
        return;
      case "failed":
        this.state = { kind: "failed", code: m.code, message: m.message };
        this.failGenesis(new BkvError(m.code as ErrorCode, m.message));
        this.opts.log.error({ event: "hsm-failed", code: m.code, reason: m.message }, "HSM refuses to serve");
        this.emit("failed");
        return;
      case "persist": {
        const t0 = process.hrtime.bigint();
        this.opts.storage.persist(m.entries, m.snapshot, m.truncateFrom);
        this.onPersistTimed?.(Number(process.hrtime.bigint() - t0) / 1e9);
        this.send({ type: "persisted", id: m.id });
        return;
      }
      case "peer":
        this.opts.onPeer?.(m.to, m.bytes);
        return;
      case "wake":
        this.clock.wakeAt(m.tick);
        return;
      case "reply": {
        const p = this.pending.get(m.tag);
        if (p === undefined) return;
        this.pending.delete(m.tag);
        clearTimeout(p.timer);
        p.resolve(
          m.ok ? { ok: true, envelope: m.envelope } : { ok: false, code: m.code, message: m.message },
        );
        return;
      }
      case "status": {
        const { type: _t, ...status } = m;
        this.lastStatus = status;
        for (const w of this.statusWaiters) w(status);
        this.statusWaiters = [];
        return;
      }
      case "stats": {
        const { type: _t, ...stats } = m;
        for (const w of this.statsWaiters) w(stats);
        this.statsWaiters = [];
        return;
      }
      case "countersignature": {
        const p = this.pending.get(m.tag);
        if (p === undefined) return;
        this.pending.delete(m.tag);
        clearTimeout(p.timer);
        p.resolve(
          m.ok ? { ok: true, envelope: m.signature } : { ok: false, code: m.code, message: m.message },
        );
        return;
      }
      case "genesis-packages":
      case "genesis-signature":
        if (this.genesisWaiter?.expect === m.type) this.answerGenesis(m);
        return;
    }
  }

  private answerGenesis(m: HsmToHost): void {
    const w = this.genesisWaiter!;
    this.genesisWaiter = null;
    w.resolve(m);
  }

  private failGenesis(e: BkvError): void {
    const w = this.genesisWaiter;
    this.genesisWaiter = null;
    w?.reject(e);
  }

  /**
   * One step of the genesis ceremony, sent by the operator through the admin listener: create and
   * join answer with their frame, finish with the HSM's boot as a member (its genesis entry is
   * persisted by this link like any other). Only while the HSM is uninitialized, one step at a
   * time; the HSM checks everything itself (the operator is not trusted).
   */
  genesis(
    m: HostToHsm & { type: "genesis-create" | "genesis-join" | "genesis-finish" },
    timeoutMs = 60_000,
  ): Promise<HsmToHost> {
    if (this.state.kind !== "uninitialized" || this.child === null)
      return Promise.reject(
        new BkvError(
          this.state.kind === "serving" ? ErrorCode.GenesisSpent : ErrorCode.Unavailable,
          this.state.kind === "serving"
            ? "this HSM is already a member of a fleet"
            : `the HSM is ${this.state.kind}, not waiting for a genesis`,
        ),
      );
    if (this.genesisWaiter !== null)
      return Promise.reject(new BkvError(ErrorCode.Unavailable, "another genesis step is in progress"));
    const expect =
      m.type === "genesis-create"
        ? "genesis-packages"
        : m.type === "genesis-join"
          ? "genesis-signature"
          : "booted";
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          this.failGenesis(new BkvError(ErrorCode.Unavailable, `the HSM did not answer ${m.type} in time`)),
        timeoutMs,
      );
      this.genesisWaiter = {
        expect,
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      this.send(m);
    });
  }

  /**
   * Relay a message from another member to this HSM; false (dropped: Raft retransmits) while the
   * HSM's input already holds more than a few of the biggest peer messages, so peers cannot grow the
   * host's memory without bound.
   */
  peer(from: number, bytes: Uint8Array): boolean {
    const queued = (this.child?.stdin?.writableLength ?? 0) + (this.out?.queuedBytes ?? 0);
    if (queued > MAX_QUEUED_TO_HSM) {
      this.peerDropped++;
      return false;
    }
    this.send({ type: "peer", from, bytes });
    return true;
  }

  /** Ask the HSM for its Raft status (null if it does not answer within a second). */
  status(): Promise<HsmStatus | null> {
    if (this.child === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), 1000);
      this.statusWaiters.push((s) => {
        clearTimeout(t);
        resolve(s);
      });
      this.send({ type: "status" });
    });
  }

  /** Ask the HSM for its counts (HsmStats; null if it does not answer within a second). */
  stats(): Promise<HsmStats | null> {
    if (this.child === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), 1000);
      this.statsWaiters.push((s) => {
        clearTimeout(t);
        resolve(s);
      });
      this.send({ type: "stats" });
    });
  }

  /** Ask the HSM to counter-sign a validation bundle; on success `envelope` is the signature. */
  countersign(artifact: Uint8Array, logSignature: Uint8Array): Promise<HsmReply> {
    return this.call((tag) => ({ type: "countersign", tag, artifact, logSignature }));
  }

  /** Send a client's envelope to the HSM and wait for its reply. */
  request(envelope: Uint8Array): Promise<HsmReply> {
    return this.call((tag) => ({ type: "client", tag, envelope }));
  }

  private call(make: (tag: number) => HostToHsm): Promise<HsmReply> {
    if (this.state.kind !== "serving" || this.child === null) {
      const message =
        this.state.kind === "failed" ? `HSM refuses to serve: ${this.state.code}` : "HSM is not serving";
      return Promise.resolve({ ok: false, code: ErrorCode.Unavailable, message });
    }
    const tag = this.nextTag;
    this.nextTag = this.nextTag >= 0xfffffff0 ? 1 : this.nextTag + 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        resolve({ ok: false, code: ErrorCode.Unavailable, message: "the fleet did not answer in time" });
      }, this.opts.requestTimeoutMs ?? 15_000);
      this.pending.set(tag, { resolve, timer });
      this.send(make(tag));
    });
  }

  /** Resolves once the HSM has booted (as a member or uninitialized), or rejects if it fails. */
  ready(): Promise<void> {
    if (this.state.kind === "serving" || this.state.kind === "uninitialized") return Promise.resolve();
    if (this.state.kind === "failed")
      return Promise.reject(new Error(`${this.state.code}: ${this.state.message}`));
    return new Promise((resolve, reject) => {
      const onBooted = () => {
        this.off("failed", onFailed);
        resolve();
      };
      const onFailed = () => {
        this.off("booted", onBooted);
        const s = this.state as { code: string; message: string };
        reject(new Error(`${s.code}: ${s.message}`));
      };
      this.once("booted", onBooted);
      this.once("failed", onFailed);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.clock.stop();
    if (this.statusPoll !== null) clearInterval(this.statusPoll);
    const child = this.child;
    if (child === null) return;
    this.out?.flush();
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.stdin?.end();
      setTimeout(() => child.kill("SIGKILL"), 2000).unref();
    });
  }
}
