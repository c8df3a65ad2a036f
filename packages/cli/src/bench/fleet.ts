/**
 * The fleet benchmark (prints figures; not a test): a fleet of N nodes started with `bkv dev`
 * (each node a host agent process and an HSM process, all on this machine), with or without added
 * latency between data centers. It measures recoveries per second under load from worker threads,
 * the CPU each of the fleet's processes spends per recovery (from /proc: the leader's HSM and host,
 * the followers'), and per-request and per-recovery latency one at a time, next to the raw crypto of
 * a recovery measured in this process (raw-crypto.ts), and the CPU the idle fleet spends per second
 * (ticks, heartbeats, status polls). The load generators' own OPAQUE client work uses light key
 * stretching (Argon2id t=1, m=8 KiB); they run in this process, whose CPU is not
 * counted: what is measured is the fleet.
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
import { LIGHT, type RawCrypto } from "./raw-crypto.js";
import { runLoad } from "./vault-load.js";

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

interface NodeProcesses {
  node: number;
  role: string;
  hostPid: number | null;
  hsmPid: number | null;
}

async function nodeProcesses(info: DevInfo): Promise<NodeProcesses[]> {
  return Promise.all(
    info.nodes.map(async (n) => {
      const h = (await (await fetch(`${n.url}/v1/health`)).json()) as {
        role?: string;
        hostPid?: number;
        hsmPid?: number;
      };
      return {
        node: n.node,
        role: h.role ?? "unknown",
        hostPid: typeof h.hostPid === "number" ? h.hostPid : null,
        hsmPid: typeof h.hsmPid === "number" ? h.hsmPid : null,
      };
    }),
  );
}

/** CPU seconds of the leader's HSM and host and of the followers' HSMs and hosts, summed per group. */
function cpuByRole(nodes: NodeProcesses[]): {
  leaderHsm: number;
  leaderHost: number;
  followerHsms: number;
  followerHosts: number;
} {
  const c = { leaderHsm: 0, leaderHost: 0, followerHsms: 0, followerHosts: 0 };
  for (const n of nodes) {
    const lead = n.role === "leader";
    if (n.hsmPid !== null) c[lead ? "leaderHsm" : "followerHsms"] += cpuSeconds(n.hsmPid);
    if (n.hostPid !== null) c[lead ? "leaderHost" : "followerHosts"] += cpuSeconds(n.hostPid);
  }
  return c;
}

export interface FleetBenchResult {
  recoveriesPerSecond: number;
  /** All of the fleet's processes (hosts and HSMs), ms of CPU per recovery. */
  cpuMsPerRecovery: number;
  leaderHsmMs: number;
  leaderHostMs: number;
  /** Mean over the followers, per process. */
  followerHsmMs: number;
  followerHostMs: number;
  /** All of the fleet's processes with nothing to do (ticks, heartbeats, polling): ms of CPU per second. */
  idleCpuMsPerSecond: number;
  /** The leader changed during the load: the per-role split is not meaningful. */
  leaderChanged: boolean;
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
  /** How long to measure the idle fleet, seconds (default 5). */
  idleSeconds?: number;
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

    // The idle fleet: what its clocks, heartbeats and status polls cost with no request in flight.
    const procs = await nodeProcesses(info);
    await new Promise((r) => setTimeout(r, 1000));
    const idle0 = cpuByRole(procs);
    const i0 = performance.now();
    await new Promise((r) => setTimeout(r, (opts.idleSeconds ?? 5) * 1000));
    const idle1 = cpuByRole(procs);
    const idleWall = (performance.now() - i0) / 1000;
    const total = (c: typeof idle0) => c.leaderHsm + c.leaderHost + c.followerHsms + c.followerHosts;
    const idleCpuMsPerSecond = ((total(idle1) - total(idle0)) / idleWall) * 1000;

    // Throughput under load from worker threads.
    const cpu0 = cpuByRole(procs);
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
    const cpu1 = cpuByRole(procs);
    const after = await nodeProcesses(info);
    const leaderChanged =
      after.find((p) => p.role === "leader")?.node !== procs.find((p) => p.role === "leader")?.node;
    const n = results.length;
    const ms = (k: keyof typeof cpu0, per = 1) => ((cpu1[k] - cpu0[k]) / n / per) * 1000;
    const followers = Math.max(1, procs.length - 1);
    return {
      recoveriesPerSecond: n / wall,
      cpuMsPerRecovery: ms("leaderHsm") + ms("leaderHost") + ms("followerHsms") + ms("followerHosts"),
      leaderHsmMs: ms("leaderHsm"),
      leaderHostMs: ms("leaderHost"),
      followerHsmMs: ms("followerHsms", followers),
      followerHostMs: ms("followerHosts", followers),
      idleCpuMsPerSecond,
      leaderChanged,
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

export async function benchFleets(opts: { seconds: number; raw: RawCrypto }): Promise<void> {
  process.stdout.write(
    "\nfleet benchmark: 5 nodes (host agent + HSM process each) started by bkv dev on this machine\n",
  );
  const a = await benchFleet({ nodes: 5, latencyMs: 0, seconds: opts.seconds });
  const b = await benchFleet({ nodes: 5, latencyMs: 30, seconds: Math.max(4, Math.floor(opts.seconds / 2)) });
  const raw = opts.raw;
  const ratio = a.leaderHsmMs / raw.perRecoveryMs;
  const f = (x: number) => x.toFixed(2);
  const rows: [string, string][] = [
    [
      "raw crypto per recovery (1 core, this process)",
      `${f(raw.perRecoveryMs)} ms = OPAQUE server login ${f(1000 / raw.opaqueLoginsPerSecond)} + 2 x HPKE ${f(raw.hpkeOpMs)}`,
    ],
    ["recoveries/s, 5 nodes, load from this machine", a.recoveriesPerSecond.toFixed(0)],
    [
      "leader HSM CPU per recovery",
      `${f(a.leaderHsmMs)} ms = ${ratio.toFixed(2)} x raw (target <= 1.5: ${ratio <= 1.5 ? "ok" : "ABOVE TARGET"})${a.leaderChanged ? " (leader changed during the run)" : ""}`,
    ],
    [
      "leader host, follower HSM, follower host CPU per recovery",
      `${f(a.leaderHostMs)} / ${f(a.followerHsmMs)} / ${f(a.followerHostMs)} ms (followers: mean per process)`,
    ],
    [
      "CPU of all 10 fleet processes per recovery",
      `${f(a.cpuMsPerRecovery)} ms (target <= 5: ${a.cpuMsPerRecovery <= 5 ? "ok" : "ABOVE TARGET"})`,
    ],
    [
      "idle fleet: CPU of all 10 processes per second",
      `${a.idleCpuMsPerSecond.toFixed(0)} ms/s (no request in flight; at ${a.recoveriesPerSecond.toFixed(0)} recoveries/s that is ${f(a.idleCpuMsPerSecond / a.recoveriesPerSecond)} ms of the figure above)`,
    ],
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
    ["CPU of all 10 fleet processes per recovery, 30 ms", `${f(b.cpuMsPerRecovery)} ms`],
    ["idle fleet with 30 ms: CPU of all 10 processes per second", `${b.idleCpuMsPerSecond.toFixed(0)} ms/s`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
  process.stdout.write(
    "  (a request's commit needs one round trip from the leader to a majority: 2 x 30 ms with --latency 30;\n" +
      "   the client talks to any node, which forwards to the leader; a recovery is two requests;\n" +
      "   the load generators run in this process with light client key stretching, not counted)\n",
  );
}
