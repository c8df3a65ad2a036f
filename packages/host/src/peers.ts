/**
 * Relaying HSM peer messages between hosts: each host POSTs its HSM's messages for another member to
 * that member's host (`POST /v1/peer`, length-prefixed frames). The hosts cannot read or forge them;
 * the HSMs authenticate every message. For development, a faults file can isolate nodes from each
 * other and add latency between data centers (`bkv dev partition|heal`, `bkv dev --latency`).
 */
import { readFileSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
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

/**
 * Sends this host's HSM messages to the other members' hosts over one long-lived stream per peer
 * (an HTTP connection upgraded to length-prefixed frames at /v1/peer/stream). Messages to a peer
 * that is down are dropped: Raft retransmits. Faults from the faults file apply on both ends.
 */
export class PeerTransport {
  private links = new Map<number, PeerLink>();
  readonly counters = { sent: 0, dropped: 0 };

  constructor(
    private readonly self: number,
    peers: PeerConfig[],
    private readonly faults: FaultsFile,
    log: Logger,
  ) {
    for (const p of peers) this.links.set(p.node, new PeerLink(self, p, log));
  }

  send(to: number, bytes: Uint8Array): void {
    const link = this.links.get(to);
    if (link === undefined || this.faults.cut(this.self, to)) {
      this.counters.dropped++;
      return;
    }
    const latency = this.faults.get().latencyMs;
    const data = frame(bytes);
    if (latency > 0) setTimeout(() => link.write(data), latency);
    else link.write(data);
    this.counters.sent++;
  }

  close(): void {
    for (const l of this.links.values()) l.close();
  }
}

class PeerLink {
  private socket: Socket | null = null;
  private connecting = false;
  private closed = false;
  private pending: Uint8Array[] = [];
  private failures = 0;

  constructor(
    private readonly self: number,
    private readonly peer: PeerConfig,
    private readonly log: Logger,
  ) {}

  write(data: Uint8Array): void {
    if (this.socket !== null) {
      this.socket.write(data);
      return;
    }
    // Keep a little while connecting; beyond that, drop (Raft retransmits).
    if (this.pending.length < 1000) this.pending.push(data);
    this.connect();
  }

  private connect(): void {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const url = new URL(this.peer.url);
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      path: "/v1/peer/stream",
      headers: { connection: "Upgrade", upgrade: PEER_PROTOCOL, "x-bkv-from": String(this.self) },
    });
    req.on("upgrade", (_res, socket) => {
      this.connecting = false;
      this.failures = 0;
      socket.setNoDelay(true);
      this.socket = socket;
      socket.on("error", () => socket.destroy());
      socket.on("close", () => {
        if (this.socket === socket) this.socket = null;
      });
      for (const d of this.pending) socket.write(d);
      this.pending = [];
    });
    const retry = (why: string) => {
      this.connecting = false;
      this.pending = [];
      if (++this.failures % 50 === 1) {
        this.log.warn(
          { event: "peer-unreachable", peer: this.peer.node, reason: why },
          "peer host unreachable",
        );
      }
    };
    req.on("response", (res) => {
      res.resume();
      retry(`HTTP ${res.statusCode}`);
    });
    req.on("error", (e) => retry(e.message));
    req.end();
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}

export const PEER_PROTOCOL = "bkv-peer";
