import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const root = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "..");
const script = join(root, "packages", "client", "build-browser.mjs");
const built = join(root, "packages", "client", "dist", "browser", "bkv-client.js");
const sizeFile = join(root, "packages", "client", "dist", "browser", "size.json");

/** Newest modification time of the sources the browser build is made from. */
function newestSource(): number {
  let newest = statSync(script).mtimeMs;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const pkg of ["client", "wire", "tlog"]) walk(join(root, "packages", pkg, "src"));
  return newest;
}

interface BrowserSdk {
  VaultClient: unknown;
  TiledLog: unknown;
  enrollPasskey: unknown;
  recoverWithPasskey: unknown;
  verifyBundle: unknown;
  generateBackupKey(): Uint8Array;
  encryptBytes(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
  decryptBytes(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
  wrapWithPrf(
    prf: Uint8Array,
    salt: Uint8Array,
    user: string,
    id: Uint8Array,
    k: Uint8Array,
  ): Promise<unknown>;
  unwrapWithPrf(prf: Uint8Array, wrap: unknown, user: string, keyId: Uint8Array): Promise<Uint8Array>;
  backupKeyId(k: Uint8Array): Promise<Uint8Array>;
  newPasskeySalt(): Uint8Array;
}

describe("browser SDK build", () => {
  let sdk: BrowserSdk;

  beforeAll(async () => {
    if (!existsSync(built) || statSync(built).mtimeMs < newestSource()) {
      execFileSync(process.execPath, [script], { cwd: root, stdio: "pipe" });
    }
    sdk = (await import(/* @vite-ignore */ pathToFileURL(built).href)) as BrowserSdk;
  }, 120_000);

  it("is one ES module without Node imports, with its size recorded", () => {
    const code = readFileSync(built, "utf8");
    for (const pattern of [/require\(\s*["']node:/, /from\s*["']node:/, /import\(\s*["']node:/]) {
      expect(code).not.toMatch(pattern);
    }
    expect(code).not.toMatch(/require\(\s*["'](crypto|fs|path|buffer|stream)["']/);
    const size = JSON.parse(readFileSync(sizeFile, "utf8")) as { bytes: number; gzipBytes: number };
    expect(size.bytes).toBe(statSync(built).size);
    expect(size.gzipBytes).toBeGreaterThan(0);
    expect(size.gzipBytes).toBeLessThan(size.bytes);
  });

  it("exposes the SDK", () => {
    for (const name of [
      "VaultClient",
      "enrollPasskey",
      "recoverWithPasskey",
      "AnswerBundleError",
      "decodeBackupHeader",
      "verifyBundle",
      "encryptBytes",
      "decryptBytes",
      "generateBackupKey",
      "TiledLog",
      "openCosignedCheckpoint",
      "verifyInclusion",
      "decodeArtifact",
      "toBase64Url",
    ]) {
      expect(typeof (sdk as unknown as Record<string, unknown>)[name], name).toBe("function");
    }
  });

  it("encrypts and decrypts with its own functions", async () => {
    const key = sdk.generateBackupKey();
    const data = new TextEncoder().encode("a backup, end to end".repeat(1000));
    const sealed = await sdk.encryptBytes(key, data);
    expect(sealed).not.toEqual(data);
    expect(await sdk.decryptBytes(key, sealed)).toEqual(data);
    await expect(sdk.decryptBytes(sdk.generateBackupKey(), sealed)).rejects.toMatchObject({
      code: "WRONG_KEY",
    });
  });

  it("wraps and unwraps K under a PRF output with its own functions", async () => {
    const key = sdk.generateBackupKey();
    const prf = crypto.getRandomValues(new Uint8Array(32));
    const id = crypto.getRandomValues(new Uint8Array(16));
    const wrap = await sdk.wrapWithPrf(prf, sdk.newPasskeySalt(), "alice", id, key);
    expect(await sdk.unwrapWithPrf(prf, wrap, "alice", await sdk.backupKeyId(key))).toEqual(key);
    await expect(
      sdk.unwrapWithPrf(prf, wrap, "alice", await sdk.backupKeyId(sdk.generateBackupKey())),
    ).rejects.toMatchObject({ code: "WRONG_KEY" });
  });
});
