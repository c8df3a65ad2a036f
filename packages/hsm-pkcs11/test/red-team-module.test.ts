/**
 * Red team (operator): HSM_DIR/pkcs11-module names the PKCS#11 module the HSM process loads, "fixed
 * at provisioning (not by the host)" (token.ts, main.ts). It is a text file on the host's disk that
 * nothing seals, measures or attests: the operator writes the path of a module of its own (here a
 * wrapper that runs code in its ELF constructor, then forwards to SoftHSM2 so that all works as
 * before). The clean-start check has passed by then, the measurement is the genuine core's, the
 * attestation is the genuine one: the HSM boots with the operator's native code inside its process,
 * next to the fleet's secrets. Nothing a client or `bkv audit` sees changes.
 *
 * Needs `npm run build` (dist/main.js, build/hsm-core.js), SoftHSM2 and a C compiler (`cc`).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { newVendorRoot, writeVendorRoot } from "@bkv/hsm-software";
import { decodeHsmToHost, encodeHostToHsm, FrameDecoder, frame, type HsmToHost } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODULE } from "../src/index.js";

const CORE = fileURLToPath(new URL("../../../build/hsm-core.js", import.meta.url));
const require = createRequire(import.meta.url);
const MAIN = require.resolve("@bkv/hsm-pkcs11/main");
const PROVISION = require.resolve("@bkv/hsm-pkcs11/provision");
const run = promisify(execFile);

let root: string;
let marker: string;
let wrapper: string;

const WRAPPER_C = (realModule: string, markerPath: string) => `
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void operator_code(void) {
  FILE *f = fopen("${markerPath}", "w");
  if (f) { fprintf(f, "operator code ran inside HSM process %d\\n", (int)getpid()); fclose(f); }
}
typedef unsigned long (*get_list)(void **);
unsigned long C_GetFunctionList(void **list) {
  void *h = dlopen("${realModule}", RTLD_NOW | RTLD_LOCAL);
  if (!h) return 5;
  get_list real = (get_list)dlsym(h, "C_GetFunctionList");
  return real ? real(list) : 5;
}
`;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "bkv-red-module-"));
  marker = join(root, "injected.txt");
  wrapper = join(root, "libwrapper.so");
  writeFileSync(join(root, "wrapper.c"), WRAPPER_C(DEFAULT_MODULE, marker));
  await run("cc", ["-shared", "-fPIC", "-o", wrapper, join(root, "wrapper.c"), "-ldl"]);
  writeVendorRoot(newVendorRoot(), join(root, "vendor-root.key"), join(root, "vendor-root.pub"));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function start(hsmDir: string): Promise<{ code: number | null; frames: HsmToHost[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, "--dir", hsmDir, "--core", CORE], {
      stdio: "pipe",
      env: {},
    });
    const frames: HsmToHost[] = [];
    const decoder = new FrameDecoder();
    child.stderr.resume();
    child.stdout.on("data", (c: Buffer) => {
      for (const f of decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.length))) {
        frames.push(decodeHsmToHost(f));
        if (frames.at(-1)!.type === "booted") child.stdin.end();
      }
    });
    child.stdin.on("error", () => {});
    child.on("exit", (code) => resolve({ code, frames }));
    child.stdin.write(frame(encodeHostToHsm({ type: "boot", snapshot: null, entries: [] })));
  });
}

describe("red team: pkcs11-module in the HSM's folder", () => {
  it("an HSM does not load a module other than the one fixed at provisioning", async () => {
    const hsmDir = join(root, "hsm");
    await run(
      process.execPath,
      [PROVISION, "--dir", hsmDir, "--vendor-key", join(root, "vendor-root.key"), "--core", CORE],
      { env: {} },
    );
    expect(readFileSync(join(hsmDir, "pkcs11-module"), "utf8").trim()).toBe(DEFAULT_MODULE);
    // The operator edits one line on its own disk.
    writeFileSync(join(hsmDir, "pkcs11-module"), `${wrapper}\n`);
    const r = await start(hsmDir);
    const booted = r.frames.some((f) => f.type === "booted");
    const injected = existsSync(marker);
    // Before the fix: the HSM booted normally (genuine attestation, genuine measurement) and the operator's
    // constructor ran inside it.
    expect({ booted, injected }).toEqual({ booted: false, injected: false });
  });
});
