/**
 * The host's link to its HSM: spawns the HSM process, speaks the HSM API over its stdin/stdout,
 * stores what the HSM asks it to persist, and matches replies to client requests. If the HSM process
 * dies, pending requests fail as unavailable and the HSM is started again from storage.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import {
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  FrameDecoder,
  frame,
  type HostToHsm,
  type HsmToHost,
} from "@bkv/wire";
import type { Logger } from "./logger.js";
import type { HostStorage } from "./storage.js";

export type HsmReply = { ok: true; envelope: Uint8Array } | { ok: false; code: string; message: string };

export interface HsmLinkOptions {
  /** argv of the HSM process, e.g. [process.execPath, ".../hsm-software/dist/main.js", "--dir", hsmDir] */
  command: string[];
  storage: HostStorage;
  guessLimit: number;
  log: Logger;
  requestTimeoutMs?: number;
  restartDelayMs?: number;
}

export type HsmState =
  | { kind: "starting" }
  | { kind: "serving"; vaultPublicKey: Uint8Array; guessesAllowed: number; commitIndex: number }
  | { kind: "failed"; code: string; message: string };

export class HsmLink extends EventEmitter {
  private child: ChildProcess | null = null;
  private nextTag = 1;
  private pending = new Map<number, { resolve: (r: HsmReply) => void; timer: NodeJS.Timeout }>();
  private stopping = false;
  state: HsmState = { kind: "starting" };
  commitIndex = 0;

  constructor(private readonly opts: HsmLinkOptions) {
    super();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const [cmd, ...args] = this.opts.command;
    const child = spawn(cmd!, args, { stdio: ["pipe", "pipe", "inherit"] });
    this.child = child;
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
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.resolve({ ok: false, code: ErrorCode.Unavailable, message: "HSM restarted" });
      }
      this.pending.clear();
      if (this.stopping) return;
      this.opts.log.warn({ event: "hsm-exit", code, signal }, "HSM process exited; starting it again");
      this.state = { kind: "starting" };
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
    this.send({
      type: "boot",
      snapshot: stored.snapshot,
      entries: stored.entries,
      guessLimit: this.opts.guessLimit,
    });
  }

  private send(m: HostToHsm): void {
    this.child?.stdin?.write(frame(encodeHostToHsm(m)));
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
        this.state = {
          kind: "serving",
          vaultPublicKey: m.vaultPublicKey,
          guessesAllowed: m.guessesAllowed,
          commitIndex: m.commitIndex,
        };
        this.commitIndex = m.commitIndex;
        this.opts.log.info({ event: "hsm-booted", commitIndex: m.commitIndex }, "HSM serving");
        this.emit("booted");
        return;
      case "failed":
        this.state = { kind: "failed", code: m.code, message: m.message };
        this.opts.log.error({ event: "hsm-failed", code: m.code, reason: m.message }, "HSM refuses to serve");
        this.emit("failed");
        return;
      case "persist": {
        this.opts.storage.persist(m.entries, m.snapshot);
        const last = m.entries.at(-1)?.index ?? m.snapshot?.index ?? 0;
        this.commitIndex = Math.max(this.commitIndex, last);
        this.send({ type: "persisted", index: last });
        return;
      }
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
      case "status":
        return;
    }
  }

  /** Send a client's envelope to the HSM and wait for its reply. */
  request(envelope: Uint8Array): Promise<HsmReply> {
    if (this.state.kind !== "serving" || this.child === null) {
      const message =
        this.state.kind === "failed" ? `HSM refuses to serve: ${this.state.code}` : "HSM is starting";
      return Promise.resolve({ ok: false, code: ErrorCode.Unavailable, message });
    }
    const tag = this.nextTag;
    this.nextTag = this.nextTag >= 0xfffffff0 ? 1 : this.nextTag + 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        resolve({ ok: false, code: ErrorCode.Unavailable, message: "HSM did not answer in time" });
      }, this.opts.requestTimeoutMs ?? 30_000);
      this.pending.set(tag, { resolve, timer });
      this.send({ type: "client", tag, envelope });
    });
  }

  /** Resolves once the HSM serves, or rejects if it fails to boot. */
  ready(): Promise<void> {
    if (this.state.kind === "serving") return Promise.resolve();
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
    const child = this.child;
    if (child === null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.stdin?.end();
      setTimeout(() => child.kill("SIGKILL"), 2000).unref();
    });
  }
}
