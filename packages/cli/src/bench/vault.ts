/**
 * The vault benchmark (prints figures; not a test). It starts a host agent process with its HSM
 * process, measures raw OPAQUE server logins (startLogin + finishLogin) in this process, then drives
 * recoveries through the whole stack (HTTP, host, HSM, log, SQLite, NVRAM) from this process.
 *
 * On this machine the load generator shares the two cores with the host and the HSM, and a client's
 * side of a recovery costs more CPU than the server's. So next to the end-to-end rate, it reports the
 * server-side rate per HSM core: recoveries divided by the HSM process's CPU seconds (from /proc),
 * which is what one HSM can serve when the clients are elsewhere. Bench users register with light
 * key stretching (Argon2id t=1, m=8 KiB): stretching runs on the client and costs the server nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { httpTransport, VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { createFleet, type HostConfig } from "@bkv/host";
import { ed25519PublicKeyOf, measureCoreFile, newVendorRoot, provisionSoftwareHsm } from "@bkv/hsm-software";
import { fromHex } from "@bkv/wire";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

import { ensureCore } from "../fleet-setup.js";
import { MEASURED_CORE_FILE } from "../measure.js";
import { LIGHT, rawOpaqueLogins } from "./raw-crypto.js";
import { runLoad } from "./vault-load.js";

const BKV_BIN = fileURLToPath(new URL("../../bin/bkv.js", import.meta.url));
const TICKS_PER_SECOND = 100;

/** User and system CPU seconds of a process, from /proc/PID/stat (utime, stime). */
function cpu(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND };
}

function cpuSeconds(pid: number): number {
  const c = cpu(pid);
  return c.user + c.system;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function startHostProcess(configPath: string): Promise<{ child: ChildProcess; url: string; hsmPid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BKV_BIN, "host", "--config", configPath], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, BKV_LOG_LEVEL: "warn" },
    });
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const r = JSON.parse(buf.slice(0, nl)) as { host: string; hsmPid: number };
        resolve({ child, url: r.host, hsmPid: r.hsmPid });
      }
    });
    child.once("exit", (c) => reject(new Error(`host exited (${c}) before it was ready`)));
  });
}

export async function benchVault(opts: {
  seconds: number;
  concurrency?: number;
  workers?: number;
}): Promise<{ raw: number }> {
  const dir = mkdtempSync(join(tmpdir(), "bkv-bench-"));
  await ensureCore();
  // The bench is the HSM's factory here: it provisions the HSM (attestation by a throwaway vendor
  // root that never enters the HSM's folder or process).
  provisionSoftwareHsm({
    dir: join(dir, "hsm"),
    vendor: newVendorRoot(),
    measurement: measureCoreFile(MEASURED_CORE_FILE),
  });
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const config: HostConfig = {
    node: 1,
    listen: { host: "127.0.0.1", port: 0 },
    storagePath: join(dir, "host.sqlite"),
    // No Node flags (such as --prof): an HSM process refuses any (hsm-software/src/clean-start.ts).
    hsmCommand: [
      process.execPath,
      createRequire(import.meta.url).resolve("@bkv/hsm-software/main"),
      "--dir",
      join(dir, "hsm"),
      "--core",
      MEASURED_CORE_FILE,
    ],
    peers: [],
    auth: { issuer: "bench", audience: "bench", publicKeyJwk: await exportJWK(publicKey) },
    rateLimits: {
      perUser: { capacity: 1e9, refillPerSecond: 1e9 },
      perAddress: { capacity: 1e9, refillPerSecond: 1e9 },
    },
  };
  writeFileSync(join(dir, "host.json"), JSON.stringify(config));
  process.stdout.write("\nvault benchmark: one HSM (software platform), host agent over HTTP on 127.0.0.1\n");
  const raw = await rawOpaqueLogins(3);
  // The bench fleet is never published: genesis freezes a log key, a release key and a witness
  // nobody holds.
  await createFleet([{ node: 1, hsmCommand: config.hsmCommand, storagePath: config.storagePath }], {
    guessLimit: 10,
    namespace: "bkv-bench",
    epoch: 1,
    logKey: ed25519PublicKeyOf(new Uint8Array(randomBytes(32))),
    releaseKey: ed25519PublicKeyOf(new Uint8Array(randomBytes(32))),
    witnessPolicy: {
      witnesses: [{ name: "bkv-bench/witness", key: ed25519PublicKeyOf(new Uint8Array(randomBytes(32))) }],
      threshold: 1,
    },
  });
  const host = await startHostProcess(join(dir, "host.json"));
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${host.url}/v1/health`)).json()) as { role?: string };
    if (h.role === "leader") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    const info = (await (await fetch(`${host.url}/v1/info`)).json()) as { vaultPublicKey: string };
    const users = Array.from({ length: 32 }, (_, i) => `bench-${i}`);
    const tokens = await Promise.all(
      users.map((user) =>
        new SignJWT({})
          .setProtectedHeader({ alg: "EdDSA" })
          .setSubject(user)
          .setIssuer("bench")
          .setAudience("bench")
          .setExpirationTime("2h")
          .sign(privateKey),
      ),
    );
    const clients = users.map(
      (user, i) =>
        new VaultClient({
          user,
          vaultPublicKey: fromHex(info.vaultPublicKey),
          transport: httpTransport({ url: host.url, token: tokens[i]! }),
          keyStretching: LIGHT,
          hpke: nodeHpkeSealer,
        }),
    );
    const key = new Uint8Array(32).fill(1);
    for (const c of clients) await c.register("1234", key);

    const timed = async (c: VaultClient) => {
      const t = performance.now();
      await c.recover("1234");
      return performance.now() - t;
    };
    for (let i = 0; i < 20; i++) await timed(clients[i % clients.length]!);

    // Latency, one recovery at a time.
    const seq: number[] = [];
    for (let i = 0; i < 100; i++) seq.push(await timed(clients[i % clients.length]!));
    seq.sort((a, b) => a - b);

    // Throughput under concurrent load, from worker threads.
    const concurrency = opts.concurrency ?? 16;
    const workers = opts.workers ?? 2;
    const hsmSplit0 = cpu(host.hsmPid);
    const hsm0 = cpuSeconds(host.hsmPid);
    const host0 = cpuSeconds(host.child.pid!);
    const t0 = performance.now();
    const results = await runLoad({
      url: host.url,
      vaultPublicKey: info.vaultPublicKey,
      users: users.map((user, i) => ({ user, token: tokens[i]! })),
      pin: "1234",
      workers,
      concurrency,
      seconds: opts.seconds,
    });
    const lat = results;
    const wall = (performance.now() - t0) / 1000;
    const hsmCpu = cpuSeconds(host.hsmPid) - hsm0;
    const hsmSplit = cpu(host.hsmPid);
    const hsmUser = hsmSplit.user - hsmSplit0.user;
    const hsmSystem = hsmSplit.system - hsmSplit0.system;
    const hostCpu = cpuSeconds(host.child.pid!) - host0;
    lat.sort((a, b) => a - b);

    const n = lat.length;
    const e2e = n / wall;
    const perHsmCore = n / hsmCpu;
    const perServerCore = n / (hsmCpu + hostCpu);
    const rows: [string, string][] = [
      ["raw OPAQUE server logins/s (1 core, this process)", raw.toFixed(0)],
      [
        "recoveries, end to end (load generator on this machine)",
        `${n} in ${wall.toFixed(1)} s = ${e2e.toFixed(0)}/s`,
      ],
      [
        "HSM process CPU per recovery (user + system)",
        `${((hsmCpu / n) * 1000).toFixed(2)} ms (${((hsmUser / n) * 1000).toFixed(2)} + ${((hsmSystem / n) * 1000).toFixed(2)})`,
      ],
      ["host agent CPU per recovery", `${((hostCpu / n) * 1000).toFixed(2)} ms`],
      ["server-side recoveries/s per HSM core", perHsmCore.toFixed(0)],
      [
        "ratio server-side / raw (target >= 0.7)",
        `${(perHsmCore / raw).toFixed(2)} ${perHsmCore / raw >= 0.7 ? "ok" : "BELOW TARGET"}`,
      ],
      ["server-side recoveries/s per core, HSM + host together", perServerCore.toFixed(0)],
      [
        "latency, one at a time: p50 / p99",
        `${percentile(seq, 50).toFixed(1)} / ${percentile(seq, 99).toFixed(1)} ms`,
      ],
      [
        `latency at concurrency ${concurrency}: p50 / p99`,
        `${percentile(lat, 50).toFixed(1)} / ${percentile(lat, 99).toFixed(1)} ms`,
      ],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
    process.stdout.write(
      "  (a recovery = 2 sealed requests: KE1->KE2 with the guess committed first, KE3->wrapped key;\n" +
        "   bench users use light client-side key stretching, which does not change the server's work)\n",
    );
    return { raw };
  } finally {
    host.child.kill("SIGTERM");
    await new Promise((r) => host.child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}
