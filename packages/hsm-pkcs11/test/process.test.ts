/**
 * The PKCS#11 HSM process (built: dist/main.js, dist/provision.js, build/hsm-core.js) starts only
 * clean and provisioned: the provisioning tool makes the token and attests its keys; the HSM
 * process, with an empty environment, loads the module fixed at provisioning and boots; it refuses
 * NODE_OPTIONS and a SOFTHSM2_CONF from its host, and an unprovisioned folder, by exit code.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  EXIT_NEEDS_ATTESTATION,
  EXIT_UNCLEAN_START,
  newVendorRoot,
  writeVendorRoot,
} from "@bkv/hsm-software";
import {
  decodeAttestation,
  decodeHsmToHost,
  encodeHostToHsm,
  FrameDecoder,
  frame,
  type HsmToHost,
} from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODULE } from "../src/index.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));
const require = createRequire(import.meta.url);
const MAIN = require.resolve("@bkv/hsm-pkcs11/main");
const PROVISION = require.resolve("@bkv/hsm-pkcs11/provision");

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "bkv-pkcs11-process-"));
  writeVendorRoot(newVendorRoot(), join(root, "vendor-root.key"), join(root, "vendor-root.pub"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function start(
  hsmDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string; frames: HsmToHost[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, "--dir", hsmDir, "--core", CORE], { stdio: "pipe", env });
    let stderr = "";
    const frames: HsmToHost[] = [];
    const decoder = new FrameDecoder();
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdout.on("data", (c: Buffer) => {
      for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length))) {
        frames.push(decodeHsmToHost(f));
        if (frames.at(-1)!.type === "booted") child.stdin.end();
      }
    });
    child.stdin.on("error", () => {});
    child.on("exit", (code) => resolve({ code, stderr, frames }));
    child.stdin.write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
  });
}

describe("the PKCS#11 HSM process", () => {
  it("refuses an unprovisioned folder, then boots once provisioned, clean", async () => {
    const hsmDir = join(root, "hsm");
    const bare = await start(hsmDir, {});
    expect(bare.code).not.toBe(0);
    expect(bare.frames).toEqual([]);
    const p = await promisify(execFile)(
      process.execPath,
      [PROVISION, "--dir", hsmDir, "--vendor-key", join(root, "vendor-root.key"), "--core", CORE],
      { env: {} },
    );
    expect(p.stdout).toMatch(/provisioned .* \(new identity keys\)/);
    expect(readFileSync(join(hsmDir, "pkcs11-module"), "utf8").trim()).toBe(DEFAULT_MODULE);
    const r = await start(hsmDir, {});
    expect(r.code).toBe(0);
    const booted = r.frames.find((f) => f.type === "booted");
    expect(booted?.type).toBe("booted");
    if (booted?.type === "booted") expect(decodeAttestation(booted.identity).platform).toBe("pkcs11");
  });

  it("refuses NODE_OPTIONS and a SOFTHSM2_CONF from its host", async () => {
    const hsmDir = join(root, "hsm");
    for (const env of [{ NODE_OPTIONS: "--max-old-space-size=64" }, { SOFTHSM2_CONF: "/tmp/other.conf" }]) {
      const r = await start(hsmDir, env);
      expect(r.code).toBe(EXIT_UNCLEAN_START);
      expect(r.stderr).toMatch(/refusing to start/);
      expect(r.frames).toEqual([]);
    }
  });

  it("keys handed to a core with no NVRAM written since die: the next start needs a new attestation (exit 75)", async () => {
    // The boot above handed the keys to a core, which wrote no NVRAM (an uninitialized HSM writes
    // none before genesis): the next start makes new keys, which the old attestation does not name.
    const r = await start(join(root, "hsm"), {});
    expect(r.code).toBe(EXIT_NEEDS_ATTESTATION);
    expect(r.stderr).toMatch(/needs an attestation: it attests other identity keys/);
  });
});
