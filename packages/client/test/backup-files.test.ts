import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  backupSize,
  decryptBytes,
  decryptFile,
  encryptBytes,
  encryptFile,
  generateBackupKey,
  webCryptoCipher,
} from "@bkv/client/node";
import { ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pattern, same } from "./backup-helpers.js";

let dir: string;
const key = generateBackupKey();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bkv-files-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fresh(): Promise<string> {
  return mkdtemp(join(dir, "t-"));
}

describe("encryptFile / decryptFile", () => {
  it("round-trips files of several sizes and writes mode 0600", async () => {
    const d = await fresh();
    for (const n of [0, 1, 65535, 65536, 65537, (5 << 20) + 3]) {
      const data = pattern(n, n + 1);
      await writeFile(join(d, `p${n}`), data);
      const enc = await encryptFile(key, join(d, `p${n}`), join(d, `b${n}`));
      expect(enc).toEqual({ bytesIn: n, bytesOut: backupSize(n) });
      expect((await stat(join(d, `b${n}`))).size).toBe(backupSize(n));
      const dec = await decryptFile(key, join(d, `b${n}`), join(d, `r${n}`));
      expect(dec).toEqual({ bytesIn: backupSize(n), bytesOut: n });
      expect(same(await readFile(join(d, `r${n}`)), data)).toBe(true);
      expect((await stat(join(d, `r${n}`))).mode & 0o777).toBe(0o600);
      expect((await stat(join(d, `b${n}`))).mode & 0o777).toBe(0o600);
    }
    expect((await readdir(d)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("is compatible with the in-memory and WebCrypto paths, and other chunk sizes", async () => {
    const d = await fresh();
    const data = pattern(300_000);
    await writeFile(join(d, "b"), await encryptBytes(key, data, { chunkSize: 4096 }));
    await decryptFile(key, join(d, "b"), join(d, "r"));
    expect(same(await readFile(join(d, "r")), data)).toBe(true);
    await writeFile(join(d, "p"), data);
    await encryptFile(key, join(d, "p"), join(d, "b2"), { chunkSize: 3000, cipher: webCryptoCipher });
    expect(same(await decryptBytes(key, await readFile(join(d, "b2"))), data)).toBe(true);
  });

  it("reports progress up to the input size", async () => {
    const d = await fresh();
    const n = (3 << 20) + 10;
    await writeFile(join(d, "p"), pattern(n));
    const seen: [number, number][] = [];
    await encryptFile(key, join(d, "p"), join(d, "b"), {
      onProgress: (done, total) => seen.push([done, total]),
    });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)).toEqual([n, n]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![0]).toBeGreaterThan(seen[i - 1]![0]);
    const back: [number, number][] = [];
    await decryptFile(key, join(d, "b"), join(d, "r"), {
      onProgress: (done, total) => back.push([done, total]),
    });
    expect(back.at(-1)).toEqual([backupSize(n), backupSize(n)]);
  });

  it("refuses to replace an existing output unless asked, and never the input itself", async () => {
    const d = await fresh();
    await writeFile(join(d, "p"), pattern(1000));
    await writeFile(join(d, "existing"), "keep me");
    await expect(encryptFile(key, join(d, "p"), join(d, "existing"))).rejects.toMatchObject({
      code: ErrorCode.Invalid,
      message: expect.stringMatching(/already exists/),
    });
    expect(await readFile(join(d, "existing"), "utf8")).toBe("keep me");
    await encryptFile(key, join(d, "p"), join(d, "b"));
    await expect(decryptFile(key, join(d, "b"), join(d, "existing"))).rejects.toMatchObject({
      code: ErrorCode.Invalid,
    });
    expect(await readFile(join(d, "existing"), "utf8")).toBe("keep me");
    await decryptFile(key, join(d, "b"), join(d, "existing"), { overwrite: true });
    expect(same(await readFile(join(d, "existing")), pattern(1000))).toBe(true);
    await expect(encryptFile(key, join(d, "p"), join(d, "p"), { overwrite: true })).rejects.toMatchObject({
      code: ErrorCode.Invalid,
      message: expect.stringMatching(/same file/),
    });
    expect(same(await readFile(join(d, "p")), pattern(1000))).toBe(true);
    expect((await readdir(d)).sort()).toEqual(["b", "existing", "p"]);
  });

  it("keeps an existing output untouched when a restore with overwrite fails", async () => {
    const d = await fresh();
    await writeFile(join(d, "existing"), "keep me");
    const backup = await encryptBytes(key, pattern(200_000));
    await writeFile(join(d, "b"), backup.subarray(0, 150_000));
    await expect(
      decryptFile(key, join(d, "b"), join(d, "existing"), { overwrite: true }),
    ).rejects.toMatchObject({
      code: ErrorCode.Truncated,
    });
    expect(await readFile(join(d, "existing"), "utf8")).toBe("keep me");
    expect((await readdir(d)).sort()).toEqual(["b", "existing"]);
  });

  it("removes the temporary file when aborted", async () => {
    const d = await fresh();
    await writeFile(join(d, "p"), pattern(4 << 20));
    const ac = new AbortController();
    await expect(
      encryptFile(key, join(d, "p"), join(d, "b"), {
        signal: ac.signal,
        onProgress: (done) => {
          if (done >= 2 << 20) ac.abort(new Error("stopped by the test"));
        },
      }),
    ).rejects.toThrow("stopped by the test");
    expect(await readdir(d)).toEqual(["p"]);
  });

  it("reports a missing input or output folder as a file system error and leaves nothing", async () => {
    const d = await fresh();
    await expect(encryptFile(key, join(d, "missing"), join(d, "b"))).rejects.toMatchObject({
      code: "ENOENT",
    });
    await writeFile(join(d, "p"), "x");
    await expect(encryptFile(key, join(d, "p"), join(d, "no", "b"))).rejects.toMatchObject({
      code: "ENOENT",
    });
    expect(await readdir(d)).toEqual(["p"]);
  });
});
