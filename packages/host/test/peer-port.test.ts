/**
 * The peer port over real sockets, with a real HSM process behind the host (a fleet of one whose
 * config lists a second host, played by the test with that host's key):
 * - a configured host's stream reaches the HSM (the control that lets every refusal below fail);
 * - strangers (no handshake, a wrong key, an unknown host, a replayed handshake) are refused and
 *   nothing they send reaches the HSM;
 * - frames over the cap, 256 MiB ones and ones with a bad tag are refused and counted, and the HSM
 *   process keeps its pid; the number of handshakes in progress is bounded;
 * - the client API port takes no peer stream and no big body.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type HostKey,
  hostPublicKey,
  Initiator,
  MAX_PENDING_HANDSHAKES,
  type RunningHost,
  readHostKey,
  writeNewHostKey,
} from "@bkv/host";
import { frame, MAX_PEER_MESSAGE_BYTES, toHex } from "@bkv/wire";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOneNodeVault, testHsmCommand } from "./one-node.js";

let dir: string;
let host: RunningHost;
let key2: HostKey;

interface Health {
  status: string;
  role?: string;
  hsmPid?: number;
  peerForged?: number;
  peerRefused?: number;
  peerFramesRefused?: number;
  peerFramesRelayed?: number;
}

const health = async () => (await (await fetch(`${host.url}/v1/health`)).json()) as Health;

/** Poll the health until cond holds (bounded). */
async function until(what: string, cond: (h: Health) => boolean): Promise<Health> {
  for (let i = 0; i < 200; i++) {
    const h = await health();
    if (cond(h)) return h;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A raw connection to the peer port, collecting what the host sends and noticing when it closes. */
async function open(): Promise<{ s: Socket; got: () => Buffer; closed: Promise<void> }> {
  const s = connect(host.peerAddress!.port, host.peerAddress!.host);
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  s.on("error", () => {});
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  await new Promise<void>((r, j) => {
    s.once("connect", () => r());
    s.once("error", j);
  });
  return { s, got: () => Buffer.concat(chunks), closed };
}

async function readN(c: { got: () => Buffer; closed: Promise<void> }, n: number): Promise<Buffer> {
  let isClosed = false;
  void c.closed.then(() => {
    isClosed = true;
  });
  for (let i = 0; i < 400; i++) {
    if (c.got().length >= n) return c.got().subarray(0, n);
    if (isClosed) throw new Error("closed by the host");
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${n} bytes from the host`);
}

/** A full handshake as `node` with `key`; the bytes sent are recorded. */
async function handshake(key: HostKey, node = 2) {
  const c = await open();
  const hs = new Initiator(
    node,
    1,
    key,
    hostPublicKey(toHex(readHostKey(join(dir, "host-1.pem")).publicKey)),
  );
  const sent: Uint8Array[] = [];
  const send = (b: Uint8Array) => {
    sent.push(b);
    c.s.write(b);
  };
  send(hs.hello());
  const reply = await readN(c, 136);
  const { finish, mac } = hs.reply(new Uint8Array(reply));
  send(finish);
  return { ...c, mac, send, sent };
}

/** Write up to `total` bytes in 1 MiB chunks until the host closes the connection (bounded). */
async function stream(s: Socket, total: number): Promise<number> {
  const chunk = Buffer.alloc(1 << 20, 0x41);
  let sent = 0;
  while (sent < total && !s.destroyed && s.writable) {
    const n = Math.min(chunk.length, total - sent);
    const ok = s.write(n === chunk.length ? chunk : chunk.subarray(0, n));
    sent += n;
    if (!ok)
      await new Promise<void>((r) => {
        s.once("drain", () => r());
        s.once("close", () => r());
      });
  }
  return sent;
}

const bigHeader = (len: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(len);
  return b;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-peer-port-"));
  const pub1 = writeNewHostKey(join(dir, "host-1.pem"));
  const pub2 = writeNewHostKey(join(dir, "host-2.pem"));
  key2 = readHostKey(join(dir, "host-2.pem"));
  expect(pub1).not.toBe(pub2);
  const { publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  process.env.BKV_LOG_LEVEL = process.env.BKV_LOG_LEVEL ?? "silent";
  host = await startOneNodeVault({
    node: 1,
    listen: { host: "127.0.0.1", port: 0 },
    peerListen: { host: "127.0.0.1", port: 0 },
    metricsListen: { host: "127.0.0.1", port: 0 },
    hostKeyFile: join(dir, "host-1.pem"),
    storagePath: join(dir, "host.sqlite"),
    hsmCommand: testHsmCommand(dir),
    // Host 2 is configured but not running: the test plays it with its key. Its peer address is a
    // closed port, so this host's own stream to it just fails.
    peers: [
      { node: 2, url: "http://127.0.0.1:9", peerAddress: { host: "127.0.0.1", port: 9 }, hostKey: pub2 },
    ],
    auth: { issuer: "t", audience: "t", publicKeyJwk: await exportJWK(publicKey) },
    rateLimits: {
      perUser: { capacity: 1000, refillPerSecond: 1000 },
      perAddress: { capacity: 1000, refillPerSecond: 1000 },
    },
  });
  expect(host.peerAddress).not.toBeNull();
  expect(host.peerAddress!.port).not.toBe(Number(new URL(host.url).port));
});

afterAll(async () => {
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the peer port", () => {
  it("relays a configured host's frames to the HSM (which refuses junk as forged)", async () => {
    const before = await health();
    const c = await handshake(key2);
    c.send(frame(c.mac.seal(new Uint8Array(60).fill(7))));
    const after = await until(
      "the relayed junk counted as forged",
      (h) => h.peerForged! > before.peerForged!,
    );
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed! + 1);
    expect(after.peerRefused).toBe(before.peerRefused);
    c.s.destroy();
  });

  it("refuses a stranger that does not speak the handshake, and nothing reaches the HSM", async () => {
    const before = await health();
    const c = await open();
    c.s.write("GET /v1/peer/stream HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: bkv-peer\r\n\r\n");
    c.s.write(frame(new Uint8Array(60).fill(7)));
    await c.closed;
    expect(c.got().length).toBe(0);
    const after = await until("the refusal counted", (h) => h.peerRefused! > before.peerRefused!);
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
    expect(after.peerForged).toBe(before.peerForged);
  });

  it("refuses a host with the wrong key, and one that is not configured", async () => {
    const before = await health();
    const wrong: HostKey = {
      privateKey: generateKeyPairSync("ed25519").privateKey,
      publicKey: new Uint8Array(32),
    };
    const c = await handshake(wrong);
    c.send(frame(c.mac.seal(new Uint8Array(60).fill(7))));
    await c.closed;
    await expect(handshake(key2, 3)).rejects.toThrow(/closed by the host/);
    const after = await until("both refusals counted", (h) => h.peerRefused! >= before.peerRefused! + 2);
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
    expect(after.peerForged).toBe(before.peerForged);
  });

  it("refuses a replayed handshake of a configured host", async () => {
    const h0 = await health();
    const real = await handshake(key2);
    real.send(frame(real.mac.seal(new Uint8Array(60).fill(8))));
    const before = await until(
      "the real stream relayed",
      (h) => h.peerFramesRelayed! > h0.peerFramesRelayed!,
    );
    real.s.destroy();
    const c = await open();
    c.s.write(real.sent[0]!);
    await readN(c, 136);
    for (const b of real.sent.slice(1)) c.s.write(b);
    await c.closed;
    const after = await until("the replay refused", (h) => h.peerRefused! > before.peerRefused!);
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
  });

  it("refuses a frame with a bad tag and ends that stream", async () => {
    const before = await health();
    const c = await handshake(key2);
    const sealed = c.mac.seal(new Uint8Array(60).fill(7));
    sealed[0]! ^= 1;
    c.send(frame(sealed));
    await c.closed;
    const after = await until(
      "the bad frame counted",
      (h) => h.peerFramesRefused! > before.peerFramesRefused!,
    );
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
  });

  it("refuses frames just over the cap and of 256 MiB at their header; the HSM keeps its pid", async () => {
    const before = await health();
    expect(before.hsmPid).toBeGreaterThan(0);
    const a = await handshake(key2);
    // The cap is the message plus its 16-byte tag.
    a.send(bigHeader(MAX_PEER_MESSAGE_BYTES + 16 + 1));
    await stream(a.s, 1 << 20);
    await a.closed;
    const b = await handshake(key2);
    b.send(bigHeader(256 << 20));
    const sent = await stream(b.s, 256 << 20);
    await b.closed;
    // A stranger's 256 MiB frame does not even get to the frame decoder.
    const c = await open();
    c.s.write(bigHeader(256 << 20));
    await stream(c.s, 256 << 20);
    await c.closed;
    const after = await until(
      "the frames and the stranger refused",
      (h) => h.peerFramesRefused === before.peerFramesRefused! + 2 && h.peerRefused! > before.peerRefused!,
    );
    expect(sent).toBeLessThan(256 << 20);
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
    expect(after.hsmPid).toBe(before.hsmPid);
    expect(after.status).toBe("ok");
    // And the host still relays for its peers.
    const d = await handshake(key2);
    d.send(frame(d.mac.seal(new Uint8Array(60).fill(9))));
    await until("relaying again", (h) => h.peerFramesRelayed === before.peerFramesRelayed! + 1);
    d.s.destroy();
  });

  it("bounds the handshakes in progress; a configured host still gets through afterwards", async () => {
    const before = await health();
    const idle = await Promise.all(Array.from({ length: MAX_PENDING_HANDSHAKES + 4 }, () => open()));
    const refusedNow = await until(
      "the extra connections refused",
      (h) => h.peerRefused! >= before.peerRefused! + 4,
    );
    expect(refusedNow.peerRefused).toBeLessThan(before.peerRefused! + 4 + 2);
    for (const c of idle) c.s.destroy();
    await Promise.all(idle.map((c) => c.closed));
    // The host notices the closed connections a moment later: a few tries, no timing threshold.
    let c: Awaited<ReturnType<typeof handshake>> | undefined;
    for (let i = 0; i < 50 && c === undefined; i++) {
      c = await handshake(key2).catch(() => undefined);
      if (c === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    if (c === undefined) throw new Error("a configured host was shut out after the flood");
    c.send(frame(c.mac.seal(new Uint8Array(60).fill(9))));
    await until("relayed after the flood", (h) => h.peerFramesRelayed! > before.peerFramesRelayed!);
    c.s.destroy();
  });
});

describe("the client API port", () => {
  it("takes no peer stream (no upgrade, no /v1/peer)", async () => {
    const before = await health();
    const port = Number(new URL(host.url).port);
    const s = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    s.write(
      "GET /v1/peer/stream HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: bkv-peer\r\nx-bkv-from: 2\r\n\r\n",
    );
    s.write(frame(new Uint8Array(60).fill(7)));
    await closed;
    expect(Buffer.concat(chunks).toString("latin1")).toMatch(/^HTTP\/1\.1 404/);
    const post = await fetch(`${host.url}/v1/peer`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "x-bkv-from": "2" },
      body: Buffer.from(frame(new Uint8Array(60).fill(7))),
    });
    expect(post.status).toBe(404);
    const after = await health();
    expect(after.peerFramesRelayed).toBe(before.peerFramesRelayed);
    expect(after.peerForged).toBe(before.peerForged);
  });

  it("refuses a 256 MiB body before reading it; the HSM keeps its pid and the vault serves", async () => {
    const before = await health();
    const port = Number(new URL(host.url).port);
    const s = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", () => {});
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    s.write(
      `POST /v1/vault HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${256 << 20}\r\n\r\n`,
    );
    const sent = await stream(s, 256 << 20);
    s.end();
    await closed;
    expect(Buffer.concat(chunks).toString("latin1")).toMatch(/^HTTP\/1\.1 413/);
    expect(sent).toBeLessThanOrEqual(256 << 20);
    const after = await health();
    expect(after.hsmPid).toBe(before.hsmPid);
    expect(after.status).toBe("ok");
    expect(after.role).toBe("leader");
  });

  it("the refusals above show in /metrics by reason", async () => {
    const text = await (await fetch(`${host.metricsUrl}/metrics`)).text();
    const value = (sample: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
      return line === undefined ? 0 : Number(line.slice(sample.length + 1));
    };
    // Two frames over the cap from a configured host, one with a bad tag (the tests above).
    expect(value('bkv_peer_messages_refused_total{reason="oversized"}')).toBe(2);
    expect(value('bkv_peer_messages_refused_total{reason="unauthenticated"}')).toBe(1);
    expect(value('bkv_peer_messages_refused_total{reason="forged"}')).toBeGreaterThanOrEqual(1);
    expect(value("bkv_peer_connections_refused_total")).toBeGreaterThanOrEqual(3);
    expect(value("bkv_peer_frames_relayed_total")).toBeGreaterThanOrEqual(2);
  });
});

describe("host keys", () => {
  it("are never overwritten, kept private to the host, and read back with the same public key", async () => {
    const path = join(dir, "host-3.pem");
    const pub = writeNewHostKey(path);
    expect(() => writeNewHostKey(path)).toThrow(/never overwritten/);
    expect(toHex(readHostKey(path).publicKey)).toBe(pub);
    expect((await import("node:fs")).statSync(path).mode & 0o077).toBe(0);
    expect(() => hostPublicKey("00")).toThrow(/32 bytes/);
  });
});
