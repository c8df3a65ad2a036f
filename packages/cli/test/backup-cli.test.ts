/**
 * `bkv key new`, `bkv backup`, `bkv restore`, run as a user would: the built CLI (packages/cli/bin/bkv.js
 * on dist/, so `npx tsc -b` first, as `npm test` does). Plus the key file helpers, called directly.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backupSize, formatBackupKey, generateBackupKey } from "@bkv/client/node";
import { ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bkv as runBkv } from "../../../test/e2e/cli.js";
import { readKeyFile, writeKeyFile } from "../src/key-file.js";

const KEY_FORM = /^[0-9a-f]{4}(-[0-9a-f]{4}){16}$/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI, run as a user would (the same runner as the end-to-end tests). */
const bkv = (...args: string[]): Promise<Run> => runBkv(args);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "bkv-backup-cli-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  return mkdtemp(join(work, "t-"));
}

/** A folder with a key file `key`, its printed form, and a 300 kB file `data`. */
async function setup(): Promise<{ d: string; printed: string; data: Buffer }> {
  const d = await folder();
  const r = await bkv("key", "new", "--out", join(d, "key"));
  expect(r.code).toBe(0);
  const data = randomBytes(300_000);
  await writeFile(join(d, "data"), data);
  return { d, printed: r.stdout.trim(), data };
}

describe("bkv key new", () => {
  it("writes the key file (mode 0600) and prints the key on stdout only", async () => {
    const d = await folder();
    const r = await bkv("key", "new", "--out", join(d, "k"));
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(KEY_FORM);
    expect(lines[1]).toBe("");
    expect(await readFile(join(d, "k"), "utf8")).toBe(r.stdout);
    expect((await stat(join(d, "k"))).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(/Write down/);
    expect(r.stderr.replace(/-/g, "")).not.toContain(lines[0]!.replace(/-/g, "").slice(0, 8));
    expect(await readKeyFile(join(d, "k"))).toEqual(
      Uint8Array.from(Buffer.from(lines[0]!.replace(/-/g, "").slice(0, 64), "hex")),
    );
  });

  it("makes a different key each time", async () => {
    const d = await folder();
    const a = await bkv("key", "new", "--out", join(d, "a"));
    const b = await bkv("key", "new", "--out", join(d, "b"));
    expect(a.stdout).not.toBe(b.stdout);
  });

  it("refuses to overwrite a key file unless --force", async () => {
    const d = await folder();
    const first = await bkv("key", "new", "--out", join(d, "k"));
    const again = await bkv("key", "new", "--out", join(d, "k"));
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toBe(`bkv key: ${join(d, "k")} already exists; pass --force to replace it\n`);
    expect(await readFile(join(d, "k"), "utf8")).toBe(first.stdout);
    const forced = await bkv("key", "new", "--out", join(d, "k"), "--force");
    expect(forced.code).toBe(0);
    expect(forced.stdout).not.toBe(first.stdout);
    expect(await readFile(join(d, "k"), "utf8")).toBe(forced.stdout);
    expect((await stat(join(d, "k"))).mode & 0o777).toBe(0o600);
    expect(await readdir(d)).toEqual(["k"]);
  });

  it("reports usage errors with exit 1", async () => {
    const d = await folder();
    for (const args of [
      ["key", "new"],
      ["key", "old", "--out", join(d, "k")],
      ["key"],
      ["key", "new", "--bogus"],
    ]) {
      const r = await bkv(...args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^bkv key: /);
    }
    expect(await readdir(d)).toEqual([]);
  });
});

describe("bkv backup and bkv restore", () => {
  it("round-trip a file: nothing on stdout, one line on stderr that says what was written", async () => {
    const { d, data } = await setup();
    const b = await bkv("backup", "--key", join(d, "key"), join(d, "data"), join(d, "data.bkv"));
    expect(b).toEqual({
      code: 0,
      stdout: "",
      stderr: `bkv backup: encrypted ${join(d, "data")} into ${join(d, "data.bkv")} (293.1 KiB)\n`,
    });
    expect((await stat(join(d, "data.bkv"))).size).toBe(backupSize(data.length));
    const r = await bkv("restore", "--key", join(d, "key"), join(d, "data.bkv"), join(d, "restored"));
    expect(r).toEqual({
      code: 0,
      stdout: "",
      stderr: `bkv restore: decrypted and verified ${join(d, "data.bkv")} into ${join(d, "restored")} (293.0 KiB)\n`,
    });
    expect((await readFile(join(d, "restored"))).equals(data)).toBe(true);
    expect((await readdir(d)).sort()).toEqual(["data", "data.bkv", "key", "restored"]);
  });

  it("round-trip an empty file", async () => {
    const { d } = await setup();
    await writeFile(join(d, "empty"), "");
    expect((await bkv("backup", "--key", join(d, "key"), join(d, "empty"), join(d, "e.bkv"))).code).toBe(0);
    expect((await bkv("restore", "--key", join(d, "key"), join(d, "e.bkv"), join(d, "e"))).code).toBe(0);
    expect((await stat(join(d, "e"))).size).toBe(0);
  });

  it("restore with the wrong key exits 1 with the reason and leaves no output", async () => {
    const { d } = await setup();
    expect((await bkv("backup", "--key", join(d, "key"), join(d, "data"), join(d, "data.bkv"))).code).toBe(0);
    expect((await bkv("key", "new", "--out", join(d, "other"))).code).toBe(0);
    const r = await bkv("restore", "--key", join(d, "other"), join(d, "data.bkv"), join(d, "out"));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^bkv restore: this backup was made with a different backup key.*\n$/);
    expect(r.stderr).toContain(`${join(d, "out")} was not written`);
    expect(r.stderr.split("\n").length).toBe(2);
    expect((await readdir(d)).sort()).toEqual(["data", "data.bkv", "key", "other"]);
  });

  it("restore of a cut-short or altered backup exits 1 and leaves no output", async () => {
    const { d } = await setup();
    expect((await bkv("backup", "--key", join(d, "key"), join(d, "data"), join(d, "data.bkv"))).code).toBe(0);
    const backup = await readFile(join(d, "data.bkv"));
    await writeFile(join(d, "cut.bkv"), backup.subarray(0, 200_000));
    const altered = Buffer.from(backup);
    altered[150_000]! ^= 1;
    await writeFile(join(d, "altered.bkv"), altered);
    await writeFile(join(d, "padded.bkv"), Buffer.concat([backup, Buffer.from("x")]));
    const cases: [string, RegExp][] = [
      ["cut.bkv", /^bkv restore: the backup ends in the middle of chunk 3 .*cut short/],
      ["altered.bkv", /^bkv restore: chunk 2 \(at byte \d+\) failed authentication/],
      ["padded.bkv", /^bkv restore: the backup has data after its final chunk/],
      ["data", /^bkv restore: not a bkv backup file/],
    ];
    for (const [file, message] of cases) {
      const r = await bkv("restore", "--key", join(d, "key"), join(d, file), join(d, "out"));
      expect(r.code, file).toBe(1);
      expect(r.stderr, file).toMatch(message);
      expect(r.stderr.split("\n").length, file).toBe(2);
    }
    expect((await readdir(d)).sort()).toEqual([
      "altered.bkv",
      "cut.bkv",
      "data",
      "data.bkv",
      "key",
      "padded.bkv",
    ]);
  });

  it("refuses to replace an existing output unless --force", async () => {
    const { d, data } = await setup();
    await writeFile(join(d, "out"), "keep me");
    const r = await bkv("backup", "--key", join(d, "key"), join(d, "data"), join(d, "out"));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bkv backup: ${join(d, "out")} already exists; pass --force to replace it\n`);
    expect(await readFile(join(d, "out"), "utf8")).toBe("keep me");
    expect(
      (await bkv("backup", "--force", "--key", join(d, "key"), join(d, "data"), join(d, "out"))).code,
    ).toBe(0);
    await writeFile(join(d, "restored"), "keep me too");
    const r2 = await bkv("restore", "--key", join(d, "key"), join(d, "out"), join(d, "restored"));
    expect(r2.code).toBe(1);
    expect(await readFile(join(d, "restored"), "utf8")).toBe("keep me too");
    expect(
      (await bkv("restore", "--key", join(d, "key"), "--force", join(d, "out"), join(d, "restored"))).code,
    ).toBe(0);
    expect((await readFile(join(d, "restored"))).equals(data)).toBe(true);
  });

  it("reports missing or bad key files and inputs, and usage errors", async () => {
    const { d } = await setup();
    await writeFile(join(d, "bad-key"), "not a key\n");
    const cases: [string[], string][] = [
      [
        ["backup", "--key", join(d, "nokey"), join(d, "data"), join(d, "o")],
        `bkv backup: cannot read key file ${join(d, "nokey")}: no such file or folder\n`,
      ],
      [
        ["restore", "--key", join(d, "bad-key"), join(d, "data"), join(d, "o")],
        `bkv restore: key file ${join(d, "bad-key")} does not hold a backup key: character 1 is not a hex digit or '-'; expected 68 hex digits, written as 17 groups of 4 separated by '-' (a key written before the check group has 64 hex digits in 16 groups)\n`,
      ],
      [
        ["backup", "--key", join(d, "key"), join(d, "missing"), join(d, "o")],
        `bkv backup: ${join(d, "missing")}: no such file or folder\n`,
      ],
      [
        ["backup", "--key", join(d, "key"), join(d, "data"), join(d, "no-folder", "o")],
        `bkv backup: ${join(d, "no-folder", "o")}: no such file or folder\n`,
      ],
      [
        ["backup", "--key", join(d, "key"), join(d, "data"), join(d, "data")],
        `bkv backup: ${join(d, "data")} already exists; pass --force to replace it\n`,
      ],
      [
        ["backup", "--key", join(d, "key"), "--force", join(d, "data"), join(d, "data")],
        "bkv backup: the input and output are the same file\n",
      ],
    ];
    for (const [args, stderr] of cases) {
      const r = await bkv(...args);
      expect(r, args.join(" ")).toEqual({ code: 1, stdout: "", stderr });
    }
    for (const args of [
      ["backup", join(d, "data"), join(d, "o")],
      ["restore", "--key", join(d, "key"), join(d, "data")],
      ["backup", "--key", join(d, "key"), "a", "b", "c"],
    ]) {
      const r = await bkv(...args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/^bkv (backup|restore): .*\nusage: bkv (backup|restore) --key KEYFILE/);
    }
    expect((await readdir(d)).sort()).toEqual(["bad-key", "data", "key"]);
  });
});

describe("key files", () => {
  it("round-trip through writeKeyFile / readKeyFile, and read plain hex and grouped forms", async () => {
    const d = await folder();
    const key = generateBackupKey();
    await writeKeyFile(join(d, "k"), key);
    expect(await readFile(join(d, "k"), "utf8")).toBe(`${formatBackupKey(key)}\n`);
    expect(await readKeyFile(join(d, "k"))).toEqual(key);
    await writeFile(join(d, "plain"), `  ${Buffer.from(key).toString("hex").toUpperCase()}\r\n`);
    expect(await readKeyFile(join(d, "plain"))).toEqual(key);
  });

  it("refuse to overwrite without force, replace with force", async () => {
    const d = await folder();
    const a = generateBackupKey();
    const b = generateBackupKey();
    await writeKeyFile(join(d, "k"), a);
    await expect(writeKeyFile(join(d, "k"), b)).rejects.toMatchObject({
      code: ErrorCode.Invalid,
      message: `${join(d, "k")} already exists; pass --force to replace it`,
    });
    expect(await readKeyFile(join(d, "k"))).toEqual(a);
    await writeKeyFile(join(d, "k"), b, { force: true });
    expect(await readKeyFile(join(d, "k"))).toEqual(b);
    expect(await readdir(d)).toEqual(["k"]);
  });

  it("a key file with a mistyped digit is refused by its check group, without quoting it", async () => {
    const d = await folder();
    const r = await bkv("key", "new", "--out", join(d, "k"));
    const printed = r.stdout.trim();
    const typo = `${printed.slice(0, 10)}${printed[10] === "0" ? "1" : "0"}${printed.slice(11)}`;
    await writeFile(join(d, "typo"), `${typo}\n`);
    const b = await bkv("backup", "--key", join(d, "typo"), join(d, "k"), join(d, "k.bkv"));
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(
      `key file ${join(d, "typo")} does not hold a backup key: its last group (the check group) does not match the rest: a digit is mistyped or two are swapped`,
    );
    expect(b.stderr.replace(/-/g, "")).not.toContain(typo.replace(/-/g, "").slice(0, 8));
    expect(await readdir(d)).toEqual(["k", "typo"]);
  });

  it("reject files that are not keys, without quoting them", async () => {
    const d = await folder();
    const key = formatBackupKey(generateBackupKey());
    await writeFile(join(d, "short"), key.slice(0, -7));
    await writeFile(join(d, "big"), "0".repeat(10_000));
    await expect(readKeyFile(join(d, "short"))).rejects.toMatchObject({
      code: ErrorCode.Malformed,
      message: expect.stringMatching(/does not hold a backup key: it has 62 hex digits/),
    });
    await expect(readKeyFile(join(d, "short"))).rejects.not.toMatchObject({
      message: expect.stringContaining(key.slice(0, 9)),
    });
    await expect(readKeyFile(join(d, "big"))).rejects.toMatchObject({ code: ErrorCode.Malformed });
    await expect(readKeyFile(d)).rejects.toMatchObject({ message: `key file ${d} is a folder` });
    await expect(readKeyFile(join(d, "none"))).rejects.toThrow(
      `cannot read key file ${join(d, "none")}: no such file or folder`,
    );
  });
});
