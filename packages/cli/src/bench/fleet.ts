/**
 * The fleet benchmark (prints figures; not a test): a fleet of N nodes started with `bkv dev`
 * (each node a host agent process and an HSM process, all on this machine), with or without added
 * latency between data centers. It measures recoveries per second under load from worker threads,
 * the CPU the fleet's processes spend per recovery, and per-request and per-recovery latency one at
 * a time, next to raw OPAQUE server logins per second in this process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { httpTransport, VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { fromHex } from "@bkv/wire";
import { type DevInfo, mintDevToken } from "../dev-files.js";
import { runLoad } from "./vault-load.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const BKV_BIN = fileURLToPath(new URL("../../bin/bkv.js", import.meta.url));

function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

const pct = (xs: number[], p: number) =>
  xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? Number.NaN;

function startDev(
  dir: string,
  nodes: number,
  latencyMs: number,
): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        BKV_BIN,
        "dev",
        "--dir",
        dir,
        "--port",
        "0",
        "--nodes",
        String(nodes),
        "--latency",
        String(latencyMs),
        "--rate-limit",
        "off",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve({ child, ready: JSON.parse(buf.slice(0, nl)) as Record<string, unknown> });
    });
    child.once("exit", (c) => reject(new Error(`bkv dev exited (${c}) before it was ready`)));
  });
}

async function processIds(info: DevInfo): Promise<number[]> {
  const pids: number[] = [];
  for (const n of info.nodes) {
    const h = (await (await fetch(`${n.url}/v1/health`)).json()) as { hostPid?: number; hsmPid?: number };
    if (typeof h.hostPid === "number") pids.push(h.hostPid);
    if (typeof h.hsmPid === "number") pids.push(h.hsmPid);
  }
  return pids;
}

export interface FleetBenchResult {
  recoveriesPerSecond: number;
  cpuMsPerRecovery: number;
  requestP50: number;
  requestP99: number;
  recoveryP50: number;
  recoveryP99: number;
}

export async function benchFleet(opts: {
  nodes: number;
  latencyMs: number;
  seconds: number;
  concurrency?: number;
  workers?: number;
}): Promise<FleetBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "bkv-bench-fleet-"));
  const { child } = await startDev(dir, opts.nodes, opts.latencyMs);
  try {
    const info = JSON.parse(readFileSync(join(dir, "dev.json"), "utf8")) as DevInfo;
    // The fleet's vault key from its ceremony output: the load measures the vault, not bundle checks.
    const trust = JSON.parse(readFileSync(join(dir, "fleet.json"), "utf8")) as { vaultPublicKey: string };
    const urls = info.nodes.map((n) => n.url);
    const users = Array.from({ length: 64 }, (_, i) => `bench-${i}`);
    const tokens = await Promise.all(users.map((u) => mintDevToken(dir, u, 7200)));
    const timedRequests: number[] = [];
    const timed = (t: VaultTransport): VaultTransport => ({
      send: async (e, seen) => {
        const s = performance.now();
        const r = await t.send(e, seen);
        timedRequests.push(performance.now() - s);
        return r;
      },
    });
    const clients = users.map(
      (user, i) =>
        new VaultClient({
          user,
          vaultPublicKey: fromHex(trust.vaultPublicKey),
          transport: timed(httpTransport({ url: urls, token: tokens[i]! })),
          keyStretching: LIGHT,
          hpke: nodeHpkeSealer,
        }),
    );
    const key = new Uint8Array(32).fill(3);
    for (const c of clients) await c.register("1234", key);
    // Latency, one recovery at a time.
    for (let i = 0; i < 10; i++) await clients[i]!.recover("1234");
    timedRequests.length = 0;
    const seq: number[] = [];
    for (let i = 0; i < 60; i++) {
      const s = performance.now();
      await clients[i % clients.length]!.recover("1234");
      seq.push(performance.now() - s);
    }
    seq.sort((a, b) => a - b);
    const req = [...timedRequests].sort((a, b) => a - b);

    // Throughput under load from worker threads.
    const pids = await processIds(info);
    const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
    const workers = opts.workers ?? 2;
    const concurrency = opts.concurrency ?? 32;
    const t0 = performance.now();
    const results = await runLoad({
      url: urls,
      vaultPublicKey: trust.vaultPublicKey,
      users: users.map((user, i) => ({ user, token: tokens[i]! })),
      pin: "1234",
      workers,
      concurrency,
      seconds: opts.seconds,
    });
    const wall = (performance.now() - t0) / 1000;
    const cpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0;
    const n = results.length;
    return {
      recoveriesPerSecond: n / wall,
      cpuMsPerRecovery: (cpu / n) * 1000,
      requestP50: pct(req, 50),
      requestP99: pct(req, 99),
      recoveryP50: pct(seq, 50),
      recoveryP99: pct(seq, 99),
    };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchFleets(opts: { seconds: number; raw: number }): Promise<void> {
  process.stdout.write(
    "\nfleet benchmark: 5 nodes (host agent + HSM process each) started by bkv dev on this machine\n",
  );
  const a = await benchFleet({ nodes: 5, latencyMs: 0, seconds: opts.seconds });
  const b = await benchFleet({ nodes: 5, latencyMs: 30, seconds: Math.max(4, Math.floor(opts.seconds / 2)) });
  const target = 0.7 * 2 * opts.raw;
  const rows: [string, string][] = [
    ["raw OPAQUE server logins/s (1 core, this process)", opts.raw.toFixed(0)],
    [
      "recoveries/s, 5 nodes, load from this machine",
      `${a.recoveriesPerSecond.toFixed(0)} (target ${target.toFixed(0)} = 0.7 x 2 x raw: ${a.recoveriesPerSecond >= target ? "ok" : "BELOW TARGET"})`,
    ],
    ["CPU of all 10 fleet processes per recovery", `${a.cpuMsPerRecovery.toFixed(2)} ms`],
    [
      "request latency, no added latency: p50 / p99",
      `${a.requestP50.toFixed(1)} / ${a.requestP99.toFixed(1)} ms`,
    ],
    [
      "recovery latency, no added latency: p50 / p99",
      `${a.recoveryP50.toFixed(1)} / ${a.recoveryP99.toFixed(1)} ms`,
    ],
    [
      "request latency, 30 ms between data centers: p50 / p99",
      `${b.requestP50.toFixed(1)} / ${b.requestP99.toFixed(1)} ms (target p50 <= 60 + 5 ms: ${b.requestP50 <= 65 ? "ok" : "ABOVE TARGET"})`,
    ],
    ["recovery latency, 30 ms: p50 / p99", `${b.recoveryP50.toFixed(1)} / ${b.recoveryP99.toFixed(1)} ms`],
    ["recoveries/s with 30 ms, load from this machine", b.recoveriesPerSecond.toFixed(0)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
  process.stdout.write(
    "  (a request's commit needs one round trip from the leader to a majority: 2 x 30 ms with --latency 30;\n" +
      "   the client talks to any node, which forwards to the leader; a recovery is two requests)\n",
  );
}
