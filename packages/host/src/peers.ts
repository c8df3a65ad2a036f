/**
 * Relaying HSM peer messages between hosts. Each host listens for the other members' hosts on its
 * own peer address (`peerListen` in its config, never the client API's port) and opens one stream to
 * each of them to send its HSM's messages. A stream starts with a mutual handshake over the hosts'
 * Ed25519 keys from the configs (peer-handshake.ts); a stranger is refused before anything reaches
 * the HSM. Frames are capped (MAX_PEER_MESSAGE_BYTES, which the HSM's own caps accept), refused at
 * their header when over it, and so are the connections: a few handshakes at a time, one stream
 * per configured peer. The hosts cannot read or forge the messages; the HSMs authenticate every
 * one. For development, a faults file can isolate nodes from each other and add latency between
 * data centers (`bkv dev partition|heal`, `bkv dev --latency`).
 */

import type { KeyObject } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { BkvError, ErrorCode, FrameDecoder, frame, isBkvError, MAX_PEER_MESSAGE_BYTES } from "@bkv/wire";
import { type HostKey, hostPublicKey } from "./host-key.js";
import type { Logger } from "./logger.js";
import {
  FINISH_BYTES,
  FRAME_TAG_BYTES,
  type FrameMac,
  HELLO_BYTES,
  Initiator,
  REPLY_BYTES,
  Responder,
} from "./peer-handshake.js";

export interface PeerAddress {
  host: string;
  port: number;
}

export interface PeerConfig {
  node: number;
  /** The peer's client API (clients are pointed at the leader's). */
  url: string;
  /** Where the peer host listens for other hosts' streams. */
  peerAddress: PeerAddress;
  /** The peer host's Ed25519 public key (32 bytes, hex). */
  hostKey: string;
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

/** A handshake that does not finish in this time is dropped. */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** Connections still in their handshake, at most (more are refused at once). */
export const MAX_PENDING_HANDSHAKES = 16;
/** Largest frame on a peer stream: a message and its tag. */
const MAX_STREAM_FRAME = MAX_PEER_MESSAGE_BYTES + FRAME_TAG_BYTES;
/** Bytes queued for one peer (while connecting or while its socket is slow); beyond, drop: Raft retransmits. */
const MAX_QUEUED_BYTES = 2 * (MAX_STREAM_FRAME + 4);

/**
 * Sends this host's HSM messages to the other members' hosts over one long-lived stream per peer.
 * Messages to a peer that is down are dropped: Raft retransmits. Faults from the faults file apply on
 * both ends.
 */
export class PeerTransport {
  private links = new Map<number, PeerLink>();
  readonly counters = { sent: 0, dropped: 0 };

  constructor(
    private readonly self: number,
    peers: PeerConfig[],
    key: HostKey | null,
    private readonly faults: FaultsFile,
    log: Logger,
  ) {
    if (peers.length > 0 && key === null) throw new BkvError(ErrorCode.Invalid, "peers need a host key");
    for (const p of peers) this.links.set(p.node, new PeerLink(self, p, key!, log));
  }

  send(to: number, bytes: Uint8Array): void {
    const link = this.links.get(to);
    if (link === undefined || this.faults.cut(this.self, to) || bytes.length > MAX_PEER_MESSAGE_BYTES) {
      this.counters.dropped++;
      return;
    }
    const latency = this.faults.get().latencyMs;
    const ok = () => (link.write(bytes) ? this.counters.sent++ : this.counters.dropped++);
    if (latency > 0) setTimeout(ok, latency);
    else ok();
  }

  close(): void {
    for (const l of this.links.values()) l.close();
  }
}

class PeerLink {
  private socket: Socket | null = null;
  private mac: FrameMac | null = null;
  private connecting = false;
  private closed = false;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private failures = 0;
  private readonly peerKey: KeyObject;

  constructor(
    private readonly self: number,
    private readonly peer: PeerConfig,
    private readonly key: HostKey,
    private readonly log: Logger,
  ) {
    this.peerKey = hostPublicKey(peer.hostKey);
  }

  /** Queue or send one message; false if it was dropped. */
  write(message: Uint8Array): boolean {
    if (this.socket !== null && this.mac !== null) {
      const socket = this.socket;
      if (socket.writableLength > MAX_QUEUED_BYTES) return false;
      // Messages to this peer in one turn of the event loop leave in one write (writev), not one each.
      if (socket.writableCorked === 0) {
        socket.cork();
        setImmediate(() => socket.uncork());
      }
      socket.write(frame(this.mac.seal(message)));
      return true;
    }
    // Keep a little while connecting; beyond that, drop (Raft retransmits).
    if (this.pendingBytes + message.length > MAX_QUEUED_BYTES || this.pending.length >= 1000) return false;
    this.pending.push(message);
    this.pendingBytes += message.length;
    this.connect();
    return true;
  }

  private connect(): void {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const hs = new Initiator(this.self, this.peer.node, this.key, this.peerKey);
    const socket = connect({ host: this.peer.peerAddress.host, port: this.peer.peerAddress.port });
    socket.setNoDelay(true);
    let got: Uint8Array[] = [];
    let gotBytes = 0;
    let done = false;
    const timer = setTimeout(() => fail("handshake timed out"), HANDSHAKE_TIMEOUT_MS);
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      if (done) return;
      done = true;
      this.connecting = false;
      this.pending = [];
      this.pendingBytes = 0;
      if (++this.failures % 50 === 1) {
        this.log.warn(
          { event: "peer-unreachable", peer: this.peer.node, reason: why },
          "peer host unreachable",
        );
      }
    };
    socket.on("connect", () => socket.write(hs.hello()));
    socket.on("data", (chunk: Buffer) => {
      if (this.socket === socket) {
        // The responder sends nothing after its reply.
        socket.destroy();
        return;
      }
      got.push(new Uint8Array(chunk));
      gotBytes += chunk.length;
      if (gotBytes < REPLY_BYTES) return;
      if (gotBytes > REPLY_BYTES) return fail("peer sent more than its handshake reply");
      let finish: Uint8Array;
      let mac: FrameMac;
      try {
        ({ finish, mac } = hs.reply(Buffer.concat(got)));
      } catch (e) {
        return fail(isBkvError(e) ? `${e.code}: ${e.message}` : "bad handshake reply");
      }
      got = [];
      clearTimeout(timer);
      done = true;
      this.connecting = false;
      this.failures = 0;
      socket.write(finish);
      this.socket = socket;
      this.mac = mac;
      for (const m of this.pending) socket.write(frame(mac.seal(m)));
      this.pending = [];
      this.pendingBytes = 0;
    });
    socket.on("error", (e) => fail(e.message));
    socket.on("close", () => {
      if (this.socket === socket) {
        this.socket = null;
        this.mac = null;
      }
      fail("connection closed");
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}

export interface PeerListenerOptions {
  self: number;
  key: HostKey;
  peers: PeerConfig[];
  faults: FaultsFile;
  log: Logger;
  /** Relay an authenticated peer's message to this host's HSM; false if it was dropped. */
  deliver: (from: number, message: Uint8Array) => boolean;
}

/**
 * The peer port: only the configured peer hosts get past the handshake; nothing reaches the HSM
 * before. Counters: `refused` connections (over the handshake limit, failed or timed-out
 * handshakes), `framesRefused` (over the cap or with a bad tag: the stream ends), of which
 * `framesOversized` over the cap, `relayed`.
 */
export class PeerListener {
  readonly counters = { refused: 0, framesRefused: 0, framesOversized: 0, relayed: 0 };
  private readonly server: Server;
  private readonly peerKeys: Map<number, KeyObject>;
  private readonly handshaking = new Set<Socket>();
  private readonly streams = new Map<number, Socket>();
  private logged = 0;

  constructor(private readonly o: PeerListenerOptions) {
    this.peerKeys = new Map(o.peers.map((p) => [p.node, hostPublicKey(p.hostKey)]));
    this.server = createServer((socket) => this.accept(socket));
    this.server.maxConnections = MAX_PENDING_HANDSHAKES + o.peers.length + 1;
    this.server.on("drop", () => this.counters.refused++);
  }

  async listen(at: PeerAddress): Promise<PeerAddress> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(at.port, at.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const a = this.server.address();
    return { host: at.host, port: typeof a === "object" && a !== null ? a.port : at.port };
  }

  private refuse(socket: Socket, reason: string, code: string): void {
    this.counters.refused++;
    socket.destroy();
    // Strangers may try often; say so now and then, not for every attempt.
    if (this.logged++ % 100 === 0) {
      this.o.log.warn(
        { event: "peer-refused", code, reason, remote: socket.remoteAddress, refused: this.counters.refused },
        "refused a connection to the peer port",
      );
    }
  }

  private accept(socket: Socket): void {
    if (this.handshaking.size >= MAX_PENDING_HANDSHAKES) {
      this.refuse(socket, "too many handshakes in progress", ErrorCode.Unavailable);
      return;
    }
    this.handshaking.add(socket);
    socket.setNoDelay(true);
    const hs = new Responder(this.o.self, this.o.key, this.peerKeys);
    let buf = Buffer.alloc(0);
    let stage: "hello" | "finish" = "hello";
    const timer = setTimeout(
      () => this.refuse(socket, "handshake timed out", ErrorCode.Unavailable),
      HANDSHAKE_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        if (stage === "hello") {
          if (buf.length < HELLO_BYTES) return;
          // The initiator must wait for the reply before it sends anything more.
          if (buf.length > HELLO_BYTES) throw new BkvError(ErrorCode.Malformed, "bytes before the reply");
          socket.write(hs.hello(buf));
          buf = Buffer.alloc(0);
          stage = "finish";
          return;
        }
        if (buf.length < FINISH_BYTES) return;
        const { from, mac } = hs.finish(buf.subarray(0, FINISH_BYTES));
        const rest = buf.subarray(FINISH_BYTES);
        clearTimeout(timer);
        socket.off("data", onData);
        this.handshaking.delete(socket);
        this.stream(socket, from, mac, rest);
      } catch (e) {
        clearTimeout(timer);
        this.refuse(
          socket,
          isBkvError(e) ? e.message : "bad handshake",
          isBkvError(e) ? e.code : ErrorCode.Malformed,
        );
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(timer);
      this.handshaking.delete(socket);
    });
  }

  /** An authenticated stream from `from`: it replaces any older one from that host. */
  private stream(socket: Socket, from: number, mac: FrameMac, rest: Uint8Array): void {
    this.streams.get(from)?.destroy();
    this.streams.set(from, socket);
    socket.on("close", () => {
      if (this.streams.get(from) === socket) this.streams.delete(from);
    });
    const decoder = new FrameDecoder({ maxFrame: MAX_STREAM_FRAME });
    const onData = (chunk: Uint8Array) => {
      let messages: Uint8Array[];
      try {
        messages = decoder.push(chunk).map((f) => mac.open(f));
      } catch (e) {
        this.counters.framesRefused++;
        if (decoder.refused > 0) this.counters.framesOversized++;
        this.o.log.warn(
          { event: "peer-frame-refused", peer: from, code: isBkvError(e) ? e.code : ErrorCode.Malformed },
          "refused a frame from a peer host; closing its stream",
        );
        socket.destroy();
        return;
      }
      if (this.o.faults.cut(from, this.o.self)) return;
      for (const m of messages) if (this.o.deliver(from, m)) this.counters.relayed++;
    };
    socket.on("data", (chunk: Buffer) =>
      onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)),
    );
    if (rest.length > 0) onData(new Uint8Array(rest));
  }

  async close(): Promise<void> {
    for (const s of this.handshaking) s.destroy();
    for (const s of this.streams.values()) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
