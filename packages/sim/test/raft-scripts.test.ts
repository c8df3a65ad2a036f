/**
 * Raft at message level: every `packages/sim/testdata/raft/*.txt` is a script of steps (ticks,
 * deliveries, drops, replays, host writes and confirmations, restarts, old disks) against the real
 * Raft of hsm-core, each followed by what it must print (packages/sim/src/raft-script.ts). One
 * vitest test per file; REWRITE=1 writes the actual outputs into the files instead, for a person to
 * read and check:
 *
 *     REWRITE=1 npx vitest run packages/sim/test/raft-scripts.test.ts
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mismatches, renderScript } from "../src/datadriven.js";
import { parseRaftScript, runRaftScript } from "../src/raft-script.js";

const DIR = fileURLToPath(new URL("../testdata/raft/", import.meta.url));
const REWRITE = process.env["REWRITE"] === "1";
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".txt"))
  .sort();

describe("raft scripts (packages/sim/testdata/raft)", () => {
  it("has scripts", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it("refuses malformed scripts, naming the file and line", () => {
    const bad = (text: string) => () => parseRaftScript(text, "r.txt");
    expect(bad("tick\n----\n")).toThrow(/^r\.txt:1: the first command must be "cluster"/);
    expect(bad("cluster nodes=3\n----\n\ndeliver type=ping\n----\n")).toThrow(
      /^r\.txt:4: deliver: type=ping/,
    );
    expect(bad("cluster nodes=3\n----\n\nfly\n----\n")).toThrow(/^r\.txt:4: unknown command "fly"/);
    expect(bad("cluster nodes=3\n----\n\nrestart\n----\n")).toThrow(
      /^r\.txt:4: restart: missing argument node=/,
    );
  });

  for (const file of files) {
    it(file, async () => {
      const path = `${DIR}${file}`;
      const script = parseRaftScript(readFileSync(path, "utf8"), file);
      const results = await runRaftScript(script);
      if (REWRITE) {
        writeFileSync(
          path,
          renderScript(
            script,
            results.map((r) => r.actual),
          ),
        );
        return;
      }
      const failed = mismatches(results);
      if (failed.length > 0)
        expect.fail(
          `${failed.length} of ${results.length} cases differ (REWRITE=1 rewrites the file):\n\n${failed.join("\n\n")}`,
        );
    });
  }
});
