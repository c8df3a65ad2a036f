/**
 * Relaying HSM peer messages between hosts: each host POSTs its HSM's messages for another member to
 * that member's host (`POST /v1/peer`, length-prefixed frames). The hosts cannot read or forge them;
 * the HSMs authenticate every message. For development, a faults file can isolate nodes from each
 * other and add latency between data centers (`bkv dev partition|heal`, `bkv dev --latency`).
 */
import { readFileSync, statSync } from "node:fs";
import { frame } from "@bkv/wire";
import type { Logger } from "./logger.js";

export interface PeerConfig {
  node: number;
  url: string;
}

export interface Faults {
  /** Nodes cut off from every other node. */
  isolated: number[];
  /** Added one-way delay between data centers, ms. */
  latencyMs: number;
}

const NO_FAULTS: Faults = { isolated: [], latencyMs: 0 };

/** Reads a faults file when it changes (checked at most every 100 ms). */
export class FaultsFile {
  private faults: Faults = NO_FAULTS;
  private mtime = 0;
  private checkedAt = 0;

  constructor(private readonly path: string | undefined) {}

  get(): Faults {
    if (this.path === undefined) return NO_FAULTS;
    const now = Date.now();
    if (now - this.checkedAt < 100) return this.faults;
    this.checkedAt = now;
    try {
      const st = statSync(this.path);
      if (st.mtimeMs !== this.mtime) {
        this.mtime = st.mtimeMs;
        const f = JSON.parse(readFileSync(this.path, "utf8")) as Partial<Faults>;
        this.faults = {
          isolated: Array.isArray(f.isolated) ? f.isolated.filter((x) => Number.isInteger(x)) : [],
          latencyMs: typeof f.latencyMs === "number" && f.latencyMs >= 0 ? f.latencyMs : 0,
        };
      }
    } catch {
      this.faults = NO_FAULTS;
    }
    return this.faults;
  }

  /** True if the link between a and b is cut. */
  cut(a: number, b: number): boolean {
    const f = this.get();
    return f.isolated.includes(a) || f.isolated.includes(b);
  }
}

export class PeerTransport {
  private batches = new Map<number, Uint8Array[]>();
  private scheduled = false;
  readonly counters = { sent: 0, failed: 0 };

  constructor(
    private readonly self: number,
    private readonly peers: PeerConfig[],
    private readonly faults: FaultsFile,
    private readonly log: Logger,
  ) {}

  send(to: number, bytes: Uint8Array): void {
    if (this.faults.cut(this.self, to)) return;
    let b = this.batches.get(to);
    if (b === undefined) {
      b = [];
      this.batches.set(to, b);
    }
    b.push(frame(bytes));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const latency = this.faults.get().latencyMs;
    for (const [to, frames] of this.batches) {
      const peer = this.peers.find((p) => p.node === to);
      if (peer === undefined) continue;
      const body = Buffer.concat(frames);
      const post = () => {
        fetch(`${peer.url}/v1/peer`, {
          method: "POST",
          headers: { "content-type": "application/octet-stream", "x-bkv-from": String(this.self) },
          body,
        }).then(
          (res) => {
            this.counters.sent += frames.length;
            void res.arrayBuffer().catch(() => undefined);
          },
          (e: unknown) => {
            this.counters.failed += frames.length;
            if (this.counters.failed % 100 === 1) {
              this.log.warn(
                { event: "peer-unreachable", to, error: (e as Error).message },
                "peer host unreachable",
              );
            }
          },
        );
      };
      if (latency > 0) setTimeout(post, latency);
      else post();
    }
    this.batches.clear();
  }
}
