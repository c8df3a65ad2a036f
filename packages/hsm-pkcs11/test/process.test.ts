/**
 * The PKCS#11 HSM process (built: dist/main.js, dist/provision.js, build/hsm-core.js) starts only
 * clean and provisioned: the provisioning tool makes the token and attests its keys; the HSM
 * process, with an empty environment, loads the module fixed at provisioning and boots; it refuses
 * NODE_OPTIONS and a SOFTHSM2_CONF from its host, an unprovisioned folder, and a module whose SHA-256
 * its attestation does not name, by exit code.
 */
import { execFile, spawn } from "node:child_process";
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  EXIT_FOLDER_IN_USE,
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
import { DEFAULT_MODULE, EXIT_MODULE_NOT_ATTESTED } from "../src/index.js";
import { find, openToken, pkcs11js, syncTokenFiles } from "../src/token.js";

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

  it("loads only a module whose SHA-256 its attestation names (exit 76 otherwise), whatever its path", async () => {
    const hsmDir = join(root, "hsm");
    // The genuine module's bytes at another path: the same hash, it boots.
    const copy = join(root, "libsofthsm2-copy.so");
    copyFileSync(DEFAULT_MODULE, copy);
    writeFileSync(join(hsmDir, "pkcs11-module"), `${copy}\n`);
    expect((await start(hsmDir, {})).frames.some((f) => f.type === "booted")).toBe(true);
    // One byte more: another hash, refused before it is loaded.
    appendFileSync(copy, Buffer.from([0]));
    const r = await start(hsmDir, {});
    expect(r.code).toBe(EXIT_MODULE_NOT_ATTESTED);
    expect(r.frames).toEqual([]);
    expect(r.stderr).toMatch(
      /refusing to load the PKCS#11 module .*its SHA-256 is [0-9a-f]{64}, but this HSM's attestation names/,
    );
    writeFileSync(join(hsmDir, "pkcs11-module"), `${DEFAULT_MODULE}\n`);
  });

  it("while an HSM process runs on the folder, provisioning and a second HSM process are refused", async () => {
    const hsmDir = join(root, "hsm");
    const child = spawn(process.execPath, [MAIN, "--dir", hsmDir, "--core", CORE], {
      stdio: "pipe",
      env: {},
    });
    child.stderr.resume();
    child.stdin.on("error", () => {});
    const booted = new Promise<boolean>((resolve) => {
      const decoder = new FrameDecoder();
      child.stdout.on("data", (c: Buffer) => {
        for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length))) {
          if (decodeHsmToHost(f).type === "booted") resolve(true);
        }
      });
      child.on("exit", () => resolve(false));
    });
    child.stdin.write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
    try {
      expect(await booted).toBe(true);
      const p = await promisify(execFile)(
        process.execPath,
        [PROVISION, "--dir", hsmDir, "--vendor-key", join(root, "vendor-root.key"), "--core", CORE],
        { env: {} },
      ).then(
        () => ({ code: 0, stderr: "" }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(p.code).toBe(1);
      expect(p.stderr).toMatch(new RegExp(`in use by process ${child.pid} `));
      const second = await start(hsmDir, {});
      expect(second.code).toBe(EXIT_FOLDER_IN_USE);
      expect(second.frames).toEqual([]);
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.stdin.end();
      await exited;
    }
  });

  it("keys survive a restart before genesis (their life record is NVRAM); NVRAM destroyed, the next start needs a new attestation (exit 75)", async () => {
    const hsmDir = join(root, "hsm");
    // The boots above wrote no NVRAM (an uninitialized HSM writes none before genesis): the life
    // record in the token's NVRAM keeps the attested keys.
    expect((await start(hsmDir, {})).code).toBe(0);
    // The operator destroys the token's NVRAM objects (with the PIN from HSM_DIR/token-pin): the
    // life record goes with them, and the next start makes new keys the attestation does not name.
    const t = openToken(hsmDir, DEFAULT_MODULE);
    try {
      for (const h of find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }])) {
        t.p11.C_DestroyObject(t.session, h);
      }
      syncTokenFiles(hsmDir);
    } finally {
      t.close();
    }
    const r = await start(hsmDir, {});
    expect(r.code).toBe(EXIT_NEEDS_ATTESTATION);
    expect(r.stderr).toMatch(/needs an attestation: it attests other identity keys/);
  });
});
