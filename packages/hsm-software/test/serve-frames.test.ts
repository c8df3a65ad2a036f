/**
 * The HSM process (built: dist/main.js and build/hsm-core.js) against a host that sends it frames
 * over the cap and frames that do not decode: it refuses and counts them, and keeps running with the
 * same pid and state.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  decodeHsmToHost,
  encodeHostToHsm,
  FrameDecoder,
  frame,
  type HsmToHost,
  MAX_FRAME_BYTES,
} from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { measureCoreFile } from "../src/load-core.js";
import { provisionSoftwareHsm } from "../src/software-platform.js";
import { newVendorRoot } from "../src/vendor-root.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));

let dir: string;
let child: ChildProcess;
const received: HsmToHost[] = [];
let wake: (() => void) | null = null;

async function next<T extends HsmToHost["type"]>(type: T): Promise<HsmToHost & { type: T }> {
  for (let i = 0; i < 1000; i++) {
    const k = received.findIndex((m) => m.type === type);
    if (k >= 0) return received.splice(k, 1)[0] as HsmToHost & { type: T };
    if (child.exitCode !== null) throw new Error(`HSM process exited (${child.exitCode})`);
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 50);
    });
  }
  throw new Error(`no ${type} frame`);
}

async function write(bytes: Uint8Array): Promise<void> {
  if (!child.stdin!.write(bytes)) await new Promise((r) => child.stdin!.once("drain", r));
}

async function status() {
  await write(frame(encodeHostToHsm({ type: "status" })));
  return next("status");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-serve-frames-"));
  provisionSoftwareHsm({
    dir: join(dir, "hsm"),
    vendor: newVendorRoot(),
    measurement: measureCoreFile(CORE),
  });
  const main = createRequire(import.meta.url).resolve("@bkv/hsm-software/main");
  child = spawn(process.execPath, [main, "--dir", join(dir, "hsm"), "--core", CORE], {
    stdio: ["pipe", "pipe", "ignore"],
    env: {},
  });
  const decoder = new FrameDecoder();
  child.stdout!.on("data", (c: Buffer) => {
    for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length)))
      received.push(decodeHsmToHost(f));
    wake?.();
  });
  child.stdin!.on("error", () => {});
  await write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
  await next("booted");
});

afterAll(async () => {
  if (child.exitCode === null) {
    const done = new Promise((r) => child.once("exit", r));
    child.stdin!.end();
    await done;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("the HSM process refuses bad frames and keeps running", () => {
  it("counts undecodable frames", async () => {
    const before = (await status()).framesRejected;
    await write(frame(Uint8Array.of(0xee, 1, 2, 3)));
    await write(frame(new Uint8Array(0)));
    await write(frame(encodeHostToHsm({ type: "tick", ticks: 1 }).slice(0, 0)));
    expect((await status()).framesRejected).toBe(before + 3);
    expect(child.exitCode).toBeNull();
  });

  it("skips a frame just over the cap unbuffered, counts it, and decodes the next frame", async () => {
    const pid = child.pid;
    const before = (await status()).framesRejected;
    const len = MAX_FRAME_BYTES + 1;
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, len);
    await write(head);
    const chunk = new Uint8Array(1 << 20).fill(0x5a);
    let sent = 0;
    while (sent < len) {
      const n = Math.min(chunk.length, len - sent);
      await write(n === chunk.length ? chunk : chunk.subarray(0, n));
      sent += n;
    }
    const after = await status();
    expect(after.framesRejected).toBe(before + 1);
    expect(child.exitCode).toBeNull();
    expect(child.pid).toBe(pid);
    // The HSM kept its state: it still answers as the same uninitialized HSM.
    expect(after.node).toBe(0);
  });

  it("a header of 4 GiB minus one is refused too, and only stdin closing ends the process", async () => {
    const before = (await status()).framesRejected;
    await write(Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.stdin!.end();
    expect(await exited).toBe(0);
    expect(before).toBeGreaterThanOrEqual(4);
  });
});
