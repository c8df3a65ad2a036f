/**
 * The HSM process (built: dist/main.js and build/hsm-core.js) refuses to start unless it starts
 * clean: NODE_OPTIONS (here --import of a preload), Node flags (--import, --require, --inspect) or
 * any environment variable make it exit with a clear message before it loads the core or opens its
 * folder's keys. Started clean and provisioned, it boots.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { decodeHsmToHost, encodeHostToHsm, FrameDecoder, frame, type HsmToHost } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_UNCLEAN_START, uncleanStart } from "../src/clean-start.js";
import { measureCoreFile } from "../src/load-core.js";
import { provisionSoftwareHsm } from "../src/software-platform.js";
import { newVendorRoot } from "../src/vendor-root.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));
const MAIN = createRequire(import.meta.url).resolve("@bkv/hsm-software/main");

let dir: string;
let hsmDir: string;
let preload: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bkv-clean-start-"));
  hsmDir = join(dir, "hsm");
  provisionSoftwareHsm({ dir: hsmDir, vendor: newVendorRoot(), measurement: measureCoreFile(CORE) });
  preload = join(dir, "preload.mjs");
  writeFileSync(preload, "globalThis.preloaded = true;\n");
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Start the HSM process, send boot, and collect what it says until it exits or boots. */
function run(
  nodeArgs: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string; frames: HsmToHost[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, MAIN, "--dir", hsmDir, "--core", CORE], {
      stdio: ["pipe", "pipe", "pipe"],
      env,
    });
    let stderr = "";
    const frames: HsmToHost[] = [];
    const decoder = new FrameDecoder();
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdout!.on("data", (c: Buffer) => {
      for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length))) {
        frames.push(decodeHsmToHost(f));
        if (frames.at(-1)!.type === "booted") child.stdin!.end();
      }
    });
    child.stdin!.on("error", () => {});
    child.on("exit", (code) => resolve({ code, stderr, frames }));
    child.stdin!.write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
  });
}

describe("an HSM process refuses an unclean start", () => {
  it("started clean (empty environment, no flags) and provisioned, it boots", async () => {
    const r = await run([], {});
    expect(r.frames.map((f) => f.type)).toContain("booted");
    expect(r.code).toBe(0);
  });

  it("refuses NODE_OPTIONS=--import of a preload, by name, and never boots the core", async () => {
    const r = await run([], { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}` });
    expect(r.code).toBe(EXIT_UNCLEAN_START);
    expect(r.stderr).toMatch(/refusing to start: .*NODE_OPTIONS is set/);
    expect(r.frames).toEqual([]);
  });

  it("refuses Node flags: --import, --require, --inspect-port", async () => {
    for (const flags of [
      ["--import", pathToFileURL(preload).href],
      ["--require", preload],
      ["--inspect-port=0"],
    ]) {
      const r = await run(flags, {});
      expect(r.code).toBe(EXIT_UNCLEAN_START);
      expect(r.stderr).toMatch(/refusing to start: .*but it was started with Node flags/);
      expect(r.frames).toEqual([]);
    }
  });

  it("refuses any environment variable (names them, never their values)", async () => {
    const r = await run([], { SOFTHSM2_CONF: "/elsewhere/softhsm2.conf", SECRETISH: "do-not-print-me" });
    expect(r.code).toBe(EXIT_UNCLEAN_START);
    expect(r.stderr).toMatch(/not on its allow list \(SOFTHSM2_CONF, SECRETISH\)/);
    expect(r.stderr).not.toContain("do-not-print-me");
    expect(r.frames).toEqual([]);
  });

  it("uncleanStart: null only for no flags and no variables", () => {
    expect(uncleanStart({}, [])).toBeNull();
    expect(uncleanStart({ NODE_OPTIONS: "" }, [])).toMatch(/NODE_OPTIONS is set/);
    expect(uncleanStart({}, ["--loader", "x.mjs"])).toMatch(/Node flags \(--loader\)/);
    expect(uncleanStart({ PATH: "/bin" }, [])).toMatch(/allow list \(PATH\)/);
    expect(uncleanStart({ PATH: "/bin" }, [], ["PATH"])).toBeNull();
  });
});
