/**
 * The host starts HSM processes with nothing of its own environment: a host whose environment
 * carries NODE_OPTIONS=--import of a preload that would copy the HSM's secrets out (here it only
 * writes a marker file) and a secret of its own starts HSM processes that load no preload and see
 * no variable, on the serving path (HsmLink) and the ceremony path (HsmProcess). The HSM process
 * itself refuses to start with NODE_OPTIONS, Node flags or any variable (hsm-software's
 * clean-start test).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HsmLink } from "../src/hsm-link.js";
import { HsmProcess } from "../src/hsm-process.js";
import { HostStorage } from "../src/storage.js";
import { testHsmCommand } from "./one-node.js";

let dir: string;
let markers: string;
let preloadUrl: string;
const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, BKV_HOST_SECRET: process.env.BKV_HOST_SECRET };

const silent = { info() {}, warn() {}, error() {} } as never;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bkv-hsm-env-"));
  markers = join(dir, "markers");
  const preload = join(dir, "copy-out.mjs");
  // What an operator's preload would do in the HSM process: run before the core, read its folder.
  writeFileSync(
    preload,
    `import { mkdirSync, writeFileSync } from "node:fs";\n` +
      `mkdirSync(${JSON.stringify(markers)}, { recursive: true });\n` +
      `writeFileSync(${JSON.stringify(markers)} + "/" + process.pid, process.argv.join(" "));\n`,
  );
  preloadUrl = pathToFileURL(preload).href;
});

beforeEach(() => {
  // The host's own environment (this test process stands for the host).
  process.env.NODE_OPTIONS = `--import ${preloadUrl}`;
  process.env.BKV_HOST_SECRET = "the host's token";
});

afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The environment a running process started with, from /proc (Linux). */
function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, "utf8")
    .split("\0")
    .filter((s) => s !== "");
}

describe("HSM processes start with a clean environment", () => {
  it("HsmLink: the host's NODE_OPTIONS preload does not load into the HSM, which sees no variable", async () => {
    const hsmDir = join(dir, "link");
    const command = testHsmCommand(hsmDir);
    expect(process.env.NODE_OPTIONS).toContain("--import");
    const storage = new HostStorage(join(hsmDir, "host.sqlite"));
    const link = new HsmLink({ command, storage, log: silent, restartDelayMs: 60_000 });
    try {
      link.start();
      await link.ready();
      expect(link.state.kind).toBe("uninitialized");
      expect(environOf(link.pid!)).toEqual([]);
    } finally {
      await link.stop();
      storage.close();
    }
    expect(existsSync(markers) ? readdirSync(markers) : []).toEqual([]);
  });

  it("HsmProcess (the ceremony's path): the same", async () => {
    const command = testHsmCommand(join(dir, "ceremony"));
    const h = new HsmProcess(command);
    try {
      h.send({ type: "boot", snapshot: null, entries: [] });
      expect((await h.next("booted")).node).toBe(0);
      expect(environOf(h.pid!)).toEqual([]);
    } finally {
      await h.stop();
    }
    expect(existsSync(markers) ? readdirSync(markers) : []).toEqual([]);
  });

  it("an HSM that needs an attestation is reported by name, and starts once provisioned", async () => {
    const hsmDir = join(dir, "unprovisioned");
    const command = testHsmCommand(hsmDir);
    rmSync(join(hsmDir, "hsm", "attestation.bin"));
    const storage = new HostStorage(join(hsmDir, "host.sqlite"));
    const link = new HsmLink({ command, storage, log: silent, restartDelayMs: 100 });
    try {
      link.start();
      await expect(link.ready()).rejects.toThrow(/^ATTESTATION: the HSM needs an attestation/);
      testHsmCommand(hsmDir); // the provisioning step again: the restarted process now starts
      for (let i = 0; i < 100 && link.state.kind !== "uninitialized"; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(link.state.kind).toBe("uninitialized");
    } finally {
      await link.stop();
      storage.close();
    }
  });
});
