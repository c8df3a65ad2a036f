/**
 * Scenario tests: every `packages/sim/testdata/*.txt` is a script of commands against one
 * in-process fleet, each followed by the output it must produce (format and commands:
 * packages/sim/src/scenario.ts and packages/sim/testdata/README.md). One vitest test per file; a
 * mismatch fails with a diff of expected and actual output for each differing case, with its file
 * and line.
 *
 *     npx vitest run packages/sim/test/scenarios.test.ts
 *
 * To write the actual outputs into the files instead of comparing (new scenarios, or a deliberate
 * change of behaviour), set REWRITE=1, then read every changed output before committing it:
 *
 *     REWRITE=1 npx vitest run packages/sim/test/scenarios.test.ts
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mismatches, parseScenario, renderScenario, runScenario } from "../src/scenario.js";

const DIR = fileURLToPath(new URL("../testdata/", import.meta.url));
const REWRITE = process.env["REWRITE"] === "1";

const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".txt"))
  .sort();

describe("scenario runner", () => {
  const parseError = (text: string) => () => parseScenario(text, "t.txt");

  it("refuses malformed files, naming the file and line", () => {
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\nfly node=1\n----\n")).toThrow(
      /^t\.txt:4: unknown command "fly"/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3 speed=2\n----\n")).toThrow(
      /^t\.txt:1: fleet: unknown argument "speed"/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\ncrash node=x\n----\n")).toThrow(
      /^t\.txt:4: crash: node=x: expected a node number/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\ncrash\n----\n")).toThrow(
      /^t\.txt:4: crash: missing argument node=/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\nstatus now\n----\n")).toThrow(
      /^t\.txt:4: status: unexpected argument "now"/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\nstatus\nguesses\n----\n")).toThrow(
      /^t\.txt:5: expected "----" after the command on line 4/,
    );
    expect(parseError("# x\nstatus\n----\n")).toThrow(/^t\.txt:2: the first command must be "fleet"/);
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\npartition 1,2 | 2,3\n----\n")).toThrow(
      /^t\.txt:4: partition: node 2 is in two groups/,
    );
    expect(parseError("fleet nodes=3 guess-limit=3\n----\n\n----\n")).toThrow(/^t\.txt:4: /);
  });

  it("reports a wrong expected output with its file, line and a diff, and rewrites it", async () => {
    const text = [
      "# one node",
      "fleet nodes=1 guess-limit=3",
      "----",
      "leader: node 1 (term 1)",
      "",
      "status",
      "----",
      "node 1: follower term 1 commit 2",
      "",
    ].join("\n");
    const scenario = parseScenario(text, "t.txt");
    const results = await runScenario(scenario);
    const failed = mismatches(results);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^t\.txt:6: status\n/);
    expect(failed[0]).toContain("- node 1: follower term 1 commit 2");
    expect(failed[0]).toMatch(/\n\+ node 1: leader term 1 commit \d+/);
    const rewritten = renderScenario(
      scenario,
      results.map((r) => r.actual),
    );
    expect(rewritten).toBe(text.replace(/node 1: follower term 1 commit 2/, results[1]!.actual[0]!));
    expect(mismatches(await runScenario(parseScenario(rewritten, "t.txt")))).toEqual([]);
  });
});

describe("scenarios (packages/sim/testdata)", () => {
  it("has scenario files", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const name of files) {
    it(name, async () => {
      const path = join(DIR, name);
      const text = readFileSync(path, "utf8");
      const scenario = parseScenario(text, `packages/sim/testdata/${name}`);
      const results = await runScenario(scenario);
      if (REWRITE) {
        const rewritten = renderScenario(
          scenario,
          results.map((r) => r.actual),
        );
        if (rewritten !== text) writeFileSync(path, rewritten);
        return;
      }
      const failed = mismatches(results);
      if (failed.length > 0) {
        expect.fail(
          `${failed.length} of ${results.length} cases differ (REWRITE=1 rewrites the file):\n\n${failed.join("\n\n")}`,
        );
      }
    });
  }
});
