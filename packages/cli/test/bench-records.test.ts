/**
 * `bkv bench --only records`, run as a user would at small sizes: it fills the record store at each
 * size, checks every sampled read with the HSM's code (a stored record read as absent, or a streamed
 * root unlike the store's, stops it) and prints one row per figure with a column per size and their
 * ratio. The figures themselves are measurements, not checked here.
 */
import { describe, expect, it } from "vitest";
import { bkv } from "../../../test/e2e/cli.js";

describe("bkv bench --only records", () => {
  it("prints each figure for each size, and the ratio of the last to the first", async () => {
    const run = await bkv(["bench", "--only", "records", "--records", "40,300"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines.find((l) => l.trim().startsWith("records"))).toMatch(/\b40\s+300\s+last\/first$/);
    const rows = lines.filter((l) => /\s\d+(\.\d+)?\s+\d+(\.\d+)?\s+\d+\.\d+x$/.test(l));
    expect(rows.map((l) => l.trim().split(/\s{2,}/)[0])).toEqual([
      "make, seal and bulk-load the records, s (setup)",
      "host storage, bytes per record",
      "open the store (host boot), ms",
      "host: read + proof, p50 ms",
      "host: read + proof, p99 ms",
      "proof of a stored record, mean bytes",
      "HSM: open + decode + verify, p50 ms",
      "HSM: open + decode + verify, p99 ms",
      "HSM: check read, root after, p50 ms",
      "HSM: check read, root after, p99 ms",
      "HSM: record cache nodes held, most",
      "host: one tree write (no fsync), p50 ms",
      "host: one tree write (no fsync), p99 ms",
      "HSM: streaming check of the whole tree, s",
    ]);
    // A record blob and its share of the tree take a few hundred bytes, at either size.
    const storage = rows[1]!
      .trim()
      .split(/\s{2,}/)
      .slice(1, 3)
      .map(Number);
    for (const b of storage) expect(b).toBeGreaterThan(300);
  });

  it("refuses a record count that is not a positive integer", async () => {
    for (const bad of ["0", "1000,x", "-5", "1.5"]) {
      const run = await bkv(["bench", "--only", "records", `--records=${bad}`]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/--records: record counts/);
    }
  });
});
