/**
 * The counts the core reports in its Stats frame (wire `HsmStats`): decisions applied from
 * committed entries and NVRAM write latency. Counts only: no user id, request or secret is kept.
 */
import { type HsmStats, NVRAM_WRITE_BUCKETS_MS } from "@bkv/wire";
import type { HsmPlatform } from "./platform.js";
import type { RaftEntry } from "./raft-entry.js";

export type DecisionCounts = Pick<
  HsmStats,
  "guessesStarted" | "guessesWrong" | "guessesRight" | "recordsDestroyed"
>;

export class CoreStats {
  readonly decisions: DecisionCounts = {
    guessesStarted: 0,
    guessesWrong: 0,
    guessesRight: 0,
    recordsDestroyed: 0,
  };
  nvramWrites = 0;
  nvramWriteMs = 0;
  readonly nvramWriteBuckets: number[] = new Array(NVRAM_WRITE_BUCKETS_MS.length + 1).fill(0);

  /** Count the decisions of one committed entry. */
  countEntry(entry: RaftEntry): void {
    for (const o of entry.ops) {
      if (o.op === "guess") this.decisions.guessesStarted++;
      else if (o.op === "login-failed") this.decisions.guessesWrong++;
      else if (o.op === "destroy") this.decisions.recordsDestroyed++;
      else if (o.op === "login-ok") this.decisions.guessesRight++;
    }
  }

  nvramWritten(ms: number): void {
    const t = Math.max(0, ms);
    this.nvramWrites++;
    this.nvramWriteMs += t;
    let i = NVRAM_WRITE_BUCKETS_MS.findIndex((b) => t <= b);
    if (i < 0) i = NVRAM_WRITE_BUCKETS_MS.length;
    this.nvramWriteBuckets[i]!++;
  }
}

/**
 * The platform with its NVRAM writes timed (on the platform's own clock) into stats. Every other
 * member is the platform's own, called on the platform itself.
 */
export function timeNvramWrites(platform: HsmPlatform, stats: CoreStats): HsmPlatform {
  const write = async (data: Uint8Array): Promise<void> => {
    const t0 = platform.now();
    await platform.nvramWrite(data);
    stats.nvramWritten(platform.now() - t0);
  };
  return new Proxy(platform, {
    get(target, key) {
      if (key === "nvramWrite") return write;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
