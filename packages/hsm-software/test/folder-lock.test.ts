/**
 * One live process per HSM folder (built: dist/main.js, dist/provision.js, build/hsm-core.js). The
 * red team's second attack on "one genesis per HSM", across processes: an HSM process runs and
 * keeps its keys in memory; the operator wipes nvram.bin and provisions the folder again, which
 * would make new keys (genuinely attested) for a second HSM process: one folder, two live
 * identities. The running process holds HSM_DIR/hsm.lock: provisioning and a second HSM process
 * refuse while it lives, naming its pid; once it has exited they work; a lock left by a dead
 * process is taken over.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  BkvError,
  decodeAttestation,
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  FrameDecoder,
  frame,
  type HsmToHost,
} from "@bkv/wire";
import { afterAll, describe, expect, it } from "vitest";
import {
  EXIT_FOLDER_IN_USE,
  LOCK_FILE,
  measureCoreFile,
  newVendorRoot,
  provisionSoftwareHsm,
  writeVendorRoot,
} from "../src/index.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));
const require = createRequire(import.meta.url);
const MAIN = require.resolve("@bkv/hsm-software/main");
const PROVISION = require.resolve("@bkv/hsm-software/provision");
const root = mkdtempSync(join(tmpdir(), "bkv-folder-lock-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

const vendor = newVendorRoot();
writeVendorRoot(vendor, join(root, "vendor-root.key"), join(root, "vendor-root.pub"));
const measurement = measureCoreFile(CORE);

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, args, { env: {} }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

const provisionProcess = (dir: string) =>
  run([PROVISION, "--dir", dir, "--vendor-key", join(root, "vendor-root.key"), "--core", CORE]);

/** An HSM process that has booted and keeps running (its stdin stays open) until ended. */
function startHsm(dir: string): Promise<{
  child: ChildProcess;
  booted: HsmToHost | null;
  code: number | null;
  stderr: string;
}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, "--dir", dir, "--core", CORE], {
      stdio: ["pipe", "pipe", "pipe"],
      env: {},
    });
    children.push(child);
    let stderr = "";
    const decoder = new FrameDecoder();
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdout!.on("data", (c: Buffer) => {
      for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length))) {
        const m = decodeHsmToHost(f);
        if (m.type === "booted") resolve({ child, booted: m, code: null, stderr });
      }
    });
    child.stdin!.on("error", () => {});
    child.on("exit", (code) => resolve({ child, booted: null, code, stderr }));
    child.stdin!.write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", () => r()));
}

describe("one live process per HSM folder", () => {
  it("while an HSM process runs, re-provisioning after an NVRAM wipe and a second HSM process are refused", async () => {
    const dir = join(root, "hsm");
    expect((await provisionProcess(dir)).code).toBe(0);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false); // provisioning let go
    const first = await startHsm(dir);
    expect(first.booted?.type).toBe("booted");
    const pid = first.child.pid!;
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe(`pid ${pid}\n`);
    const key = first.booted?.type === "booted" ? decodeAttestation(first.booted.identity).signKey : null;

    // The operator wipes NVRAM under the running process and provisions again: refused.
    rmSync(join(dir, "nvram.bin"));
    const again = await provisionProcess(dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`in use by process ${pid} `));
    let inProcess: unknown = null;
    try {
      provisionSoftwareHsm({ dir, vendor, measurement, lockWaitMs: 0 });
    } catch (e) {
      inProcess = e;
    }
    expect(inProcess).toBeInstanceOf(BkvError);
    expect((inProcess as BkvError).code).toBe(ErrorCode.Unavailable);
    // A second HSM process on the folder: refused with its own exit code, nothing booted.
    const second = await startHsm(dir);
    expect(second.booted).toBeNull();
    expect(second.code).toBe(EXIT_FOLDER_IN_USE);
    expect(second.stderr).toMatch(new RegExp(`in use by process ${pid} `));
    // The folder still has the running process's keys: the refusals made none.
    expect(existsSync(join(dir, "nvram.bin"))).toBe(false);

    // The first process ends: it lets go, and provisioning makes the new keys (NVRAM was wiped).
    first.child.stdin!.end();
    await exited(first.child);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const after = await provisionProcess(dir);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/new identity keys/);
    const next = await startHsm(dir);
    expect(next.booted?.type).toBe("booted");
    if (next.booted?.type === "booted" && key !== null) {
      expect(decodeAttestation(next.booted.identity).signKey).not.toEqual(key);
    }
    next.child.stdin!.end();
    await exited(next.child);
  });

  it("a lock left by a process that died is taken over", async () => {
    const dir = join(root, "stale");
    expect((await provisionProcess(dir)).code).toBe(0);
    const dead = spawn(process.execPath, ["-e", ""], { env: {} });
    await exited(dead);
    writeFileSync(join(dir, LOCK_FILE), `pid ${dead.pid}\n`);
    const p = await startHsm(dir);
    expect(p.booted?.type).toBe("booted");
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe(`pid ${p.child.pid}\n`);
    p.child.stdin!.end();
    await exited(p.child);
  });
});
