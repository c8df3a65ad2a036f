/**
 * `bkv --help`, run as a user would (the built CLI): it names every flag a user needs and the exit
 * codes, and the README's exit-code table says what the help says.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { bkv } from "../../../test/e2e/cli.js";
import { EXIT_CODES } from "../src/exit-codes.js";

const README = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

/** The README's exit-code table: the rows after `| code | meaning |`. */
function readmeExitTable(): { code: number; meaning: string }[] {
  const lines = README.split("\n");
  const start = lines.indexOf("| code | meaning |");
  expect(start).toBeGreaterThan(0);
  const rows: { code: number; meaning: string }[] = [];
  for (const line of lines.slice(start + 2)) {
    const m = /^\| (\d+) \| (.*) \|$/.exec(line);
    if (m === null) break;
    rows.push({ code: Number(m[1]), meaning: m[2]! });
  }
  return rows;
}

describe("bkv --help", () => {
  it("prints the usage and every exit code, exit 0", async () => {
    const r = await bkv(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    for (const e of EXIT_CODES) expect(r.stdout).toContain(`  ${e.code}  ${e.meaning}\n`);
    expect(EXIT_CODES.map((e) => e.code)).toEqual([0, 1, 3, 4, 5, 6]);
  });

  it("names the flags a newcomer needs", async () => {
    const { stdout } = await bkv(["--help"]);
    for (const flag of [
      "--namespace NS",
      "--rate-limit on|off",
      "key new --out KEYFILE [--force]",
      "backup --key KEYFILE [--force] IN OUT",
      "--token-file FILE",
      "BKV_TOKEN",
      "--replace",
      "dev status [--dir DIR]",
      "dev kill|start [--dir DIR] --node I",
    ]) {
      expect(stdout).toContain(flag);
    }
  });

  it("a command's --help (or -h) prints that command's part of the usage, exit 0, and runs nothing", async () => {
    const cases: [string[], string[], string[]][] = [
      [["backup", "--help"], ["backup --key KEYFILE [--force] IN OUT"], ["restore --key", "vault register"]],
      [["key", "new", "-h"], ["key new --out KEYFILE [--force]"], ["backup --key"]],
      [
        ["vault", "recover", "--help"],
        ["vault register|recover|delete", "--token-file FILE", "BKV_TOKEN"],
        ["dev status"],
      ],
      [["dev", "--help"], ["dev status [--dir DIR]", "dev kill|start", "dev token"], ["fleet create"]],
    ];
    for (const [args, has, hasNot] of cases) {
      const r = await bkv(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain(`usage: bkv ${args[0]}`);
      for (const h of has) expect(r.stdout, args.join(" ")).toContain(h);
      for (const h of hasNot) expect(r.stdout, args.join(" ")).not.toContain(h);
    }
    // After "--", --help is an argument, not a request for help.
    const r = await bkv(["backup", "--", "--help"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
  });

  it("the README's exit-code table says what the help says", () => {
    expect(readmeExitTable()).toEqual(EXIT_CODES.map((e) => ({ code: e.code, meaning: e.meaning })));
  });

  it("an unknown command, even one named like an object's property, exits 1 with the usage", async () => {
    for (const name of ["frobnicate", "constructor", "__proto__", "toString"]) {
      const r = await bkv([name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`bkv: unknown command '${name}'`);
      expect(r.stderr).toContain("usage: bkv");
    }
  });
});
