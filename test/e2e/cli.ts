/** Helpers for end-to-end tests: run the built `bkv` CLI as a user would, and a `bkv dev` vault. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BKV = fileURLToPath(new URL("../../packages/cli/bin/bkv.js", import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where the CLI keeps the checkpoints it has seen during these tests (not the user's home). */
export const STATE_DIR = mkdtempSync(join(tmpdir(), "bkv-state-"));

export function bkv(
  args: string[],
  input?: string,
  env: Record<string, string> = {},
  cwd?: string,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BKV, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      ...(cwd === undefined ? {} : { cwd }),
      env: { ...process.env, BKV_STATE_DIR: STATE_DIR, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

export interface DevVault {
  /** What bkv dev has written on stderr so far. */
  stderr(): string;
  url: string;
  dir: string;
  ready: Record<string, unknown>;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startDev(dir: string, extra: string[] = [], cwd?: string): Promise<DevVault> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BKV, "dev", "--dir", dir, "--port", "0", ...extra], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(cwd === undefined ? {} : { cwd }),
    });
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const onData = (d: Buffer) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      child.stdout.off("data", onData);
      const ready = JSON.parse(out.slice(0, nl)) as Record<string, unknown>;
      resolve({
        stderr: () => err,
        url: String(ready.vault),
        dir: String(ready.dir),
        ready,
        child,
        stop: (signal = "SIGTERM") =>
          new Promise((res) => {
            if (child.exitCode !== null) return res(child.exitCode);
            child.once("exit", (code) => res(code));
            child.kill(signal);
          }),
      });
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`bkv dev exited with ${code} before it was ready: ${err}`)),
    );
  });
}

/** The HSM platforms the end-to-end suites run on. */
export type Platform = "software" | "pkcs11";
