/** An HSM process driven directly over the HSM API, for ceremonies run by the operator's tools. */
import { type ChildProcess, spawn } from "node:child_process";
import {
  BkvError,
  decodeHsmToHost,
  type ErrorCode,
  encodeHostToHsm,
  FrameDecoder,
  frame,
  type HostToHsm,
  type HsmToHost,
} from "@bkv/wire";

/**
 * Start an HSM process exactly as its command says, with an empty environment: nothing of the
 * host's environment (NODE_OPTIONS, preloads, proxies, secrets) reaches it, and `spawn` passes no
 * Node flags of the host (execArgv is inherited only by fork). The HSM process refuses to start if
 * it finds any (hsm-software/src/clean-start.ts); the PKCS#11 process sets SOFTHSM2_CONF itself from
 * its folder, so neither platform needs a variable from the host (docs/platforms.md).
 */
export function spawnHsm(command: string[]): ChildProcess {
  const [cmd, ...args] = command;
  if (cmd === undefined) throw new Error("the HSM command is empty");
  return spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"], env: {} });
}

/** The HSM refused: keep its stable code so callers (and tests) can tell refusals apart. */
function hsmFailed(f: { code: string; message: string }): BkvError {
  return new BkvError(f.code as ErrorCode, `HSM refused: ${f.code}: ${f.message}`);
}

export class HsmProcess {
  private child: ChildProcess;
  private frames: HsmToHost[] = [];
  private waiting: {
    type: HsmToHost["type"];
    resolve: (m: HsmToHost) => void;
    reject: (e: Error) => void;
  }[] = [];
  private exited: Error | null = null;

  constructor(command: string[]) {
    this.child = spawnHsm(command);
    const decoder = new FrameDecoder();
    this.child.stdout!.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))) {
        const m = decodeHsmToHost(f);
        const i = this.waiting.findIndex((w) => w.type === m.type || m.type === "failed");
        if (i >= 0) {
          const w = this.waiting.splice(i, 1)[0]!;
          if (m.type === "failed") w.reject(hsmFailed(m));
          else w.resolve(m);
        } else this.frames.push(m);
      }
    });
    this.child.on("exit", (code) => {
      this.exited = new Error(`HSM process exited (${code})`);
      for (const w of this.waiting) w.reject(this.exited);
      this.waiting = [];
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(m: HostToHsm): void {
    this.child.stdin!.write(frame(encodeHostToHsm(m)));
  }

  /** The next frame of this type (or an error if the HSM fails or exits first). */
  next<T extends HsmToHost["type"]>(type: T, timeoutMs = 30_000): Promise<HsmToHost & { type: T }> {
    const i = this.frames.findIndex((f) => f.type === type || f.type === "failed");
    if (i >= 0) {
      const f = this.frames.splice(i, 1)[0]!;
      if (f.type === "failed") return Promise.reject(hsmFailed(f));
      return Promise.resolve(f as HsmToHost & { type: T });
    }
    if (this.exited !== null) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`HSM did not send ${type} in time`)), timeoutMs);
      this.waiting.push({
        type,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m as HsmToHost & { type: T });
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }

  async stop(): Promise<void> {
    if (this.exited !== null) return;
    await new Promise<void>((resolve) => {
      this.child.once("exit", () => resolve());
      this.child.stdin!.end();
      setTimeout(() => this.child.kill("SIGKILL"), 3000).unref();
    });
  }
}
