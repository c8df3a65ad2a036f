/**
 * `bkv dev`: a local fleet with everything it needs, on 127.0.0.1. Each node stands for a data
 * center: a host agent process with its HSM process. The transparency log and its witnesses start
 * first (their keys persist in the folder); a new folder then gets a fleet through the genesis
 * ceremony, frozen to the namespace, epoch 1 and that log's key; running `bkv dev` again on the same
 * folder resumes it (same fleet, same log). Fault commands act on a running
 * fleet: `kill`, `start`, `partition`, `heal`, `status`; `token` mints a development bearer token.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bind, type Faults, type HostConfig, readHostKey, writeNewHostKey } from "@bkv/host";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { readVendorRootPub } from "@bkv/hsm-software";
import { parseVerifierKey } from "@bkv/tlog";
import type { WebConfig } from "@bkv/web";
import { BkvError, ErrorCode, fromHex, toHex } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  type DevInfo,
  type DevNode,
  devPaths,
  mintDevToken,
  newTokenKey,
  publicJwk,
  readDevInfo,
  type TrustSettings,
  writeDevInfo,
} from "../dev-files.js";
import {
  createDevFleet,
  type DevFleet,
  ensureCore,
  hsmCommand,
  platformName,
  provisionDevHsms,
  readDevFleet,
} from "../fleet-setup.js";
import { alive, spawnService, stopProcess } from "../services.js";
import {
  publishDevRelease,
  publishFleet,
  type RunningTransparency,
  startTransparency,
  transparencyUrl,
  WITNESSES,
  writeTransparencyInfo,
} from "../transparency-setup.js";
import { namespaceFlag } from "./fleet.js";

const BKV_BIN = fileURLToPath(new URL("../../bin/bkv.js", import.meta.url));

/**
 * A free port for `--port 0`, picked below the kernel's ephemeral range: a port taken from that
 * range (listen on 0) can be handed to some other process's outgoing connection as its source port
 * before our host binds it, seconds later, and the host then fails to start.
 */
const EPHEMERAL_START = (() => {
  try {
    const first = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > 11_000 ? first : 32_768;
  } catch {
    return 32_768;
  }
})();
const pickedPorts = new Set<number>();

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (EPHEMERAL_START - 10_000));
    if (pickedPorts.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (free) {
      pickedPorts.add(port);
      return port;
    }
  }
  throw new Error("no free port found below the ephemeral range");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readFaults(dir: string): Faults {
  try {
    return JSON.parse(readFileSync(devPaths(dir).faultsJson, "utf8")) as Faults;
  } catch {
    return { isolated: [], latencyMs: 0 };
  }
}

function writeFaults(dir: string, f: Faults): void {
  writeFileSync(devPaths(dir).faultsJson, `${JSON.stringify(f)}\n`);
}

/** Start one node's host agent as its own process (it survives the command that started it). */
async function startHost(dir: string, n: DevNode): Promise<DevNode> {
  const s = await spawnService(
    [process.execPath, BKV_BIN, "host", "--config", n.config],
    devPaths(dir).hostDir(n.node),
    "host",
  );
  return {
    ...n,
    url: String(s.ready.host),
    hostPid: s.pid,
    hsmPid: (s.ready.hsmPid as number | null) ?? null,
  };
}

async function killNode(n: DevNode): Promise<void> {
  let hsmPid = n.hsmPid;
  try {
    const h = (await (await fetch(`${n.url}/v1/health`, { signal: AbortSignal.timeout(1000) })).json()) as {
      hsmPid?: number;
    };
    if (typeof h.hsmPid === "number") hsmPid = h.hsmPid;
  } catch {
    // host already gone
  }
  for (const pid of [n.hostPid, hsmPid]) {
    if (pid !== null && alive(pid)) process.kill(pid, "SIGKILL");
  }
}

async function nodeStatus(n: DevNode): Promise<Record<string, unknown>> {
  try {
    const res = await fetch(`${n.url}/v1/health`, { signal: AbortSignal.timeout(1500) });
    const h = (await res.json()) as Record<string, unknown>;
    return { node: n.node, url: n.url, ...h };
  } catch {
    return { node: n.node, url: n.url, status: "down", role: "down", hostPid: null, hsmPid: null };
  }
}

async function waitForLeader(info: DevInfo, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const st = await Promise.all(info.nodes.map(nodeStatus));
    if (st.some((s) => s.role === "leader" && s.status === "ok")) return;
    await sleep(100);
  }
  throw new Error("the fleet elected no leader; see the nodes' host.log");
}

// ---------------------------------------------------------------------------------------------

/** The folder of `bkv dev`, the default of every dev subcommand. */
export const DEFAULT_DEV_DIR = "bkv-dev";

async function tokenCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: "string" },
    user: { type: "string" },
    ttl: { type: "string" },
  });
  const dir = values.dir ?? DEFAULT_DEV_DIR;
  const ttl = intFlag(values.ttl, "--ttl", 3600, 1, 31 * 86400);
  process.stdout.write(`${await mintDevToken(dir, required(values.user, "--user"), ttl)}\n`);
  return 0;
}

/** Prints a fault command's outcome: a sentence, or with --json one JSON object (see the README). */
function say(json: boolean, obj: Record<string, unknown>, text: string): void {
  process.stdout.write(`${json ? JSON.stringify(obj) : text}\n`);
}

/** `[--dir DIR] --node I [--json]` of the commands that act on one node of a running fleet. */
function nodeArgs(argv: string[]): { dir: string; info: DevInfo; node: number; json: boolean } {
  const { values } = parse(argv, {
    dir: { type: "string" },
    node: { type: "string" },
    json: { type: "boolean" },
  });
  const dir = values.dir ?? DEFAULT_DEV_DIR;
  const info = readDevInfo(dir);
  const node = intFlag(required(values.node, "--node"), "--node", 0, 1, info.nodes.length);
  return { dir, info, node, json: values.json === true };
}

const isolatedText = (isolated: number[]) =>
  isolated.length === 0
    ? "no node is cut off"
    : `cut off from the others: ${isolated.map((i) => `node ${i}`).join(", ")}`;

async function killCommand(argv: string[]): Promise<number> {
  const { dir, info, node, json } = nodeArgs(argv);
  const n = info.nodes[node - 1]!;
  await killNode(n);
  info.nodes[node - 1] = { ...n, hostPid: null, hsmPid: null };
  writeDevInfo(dir, info);
  say(
    json,
    { killed: node },
    `killed node ${node} (host and HSM); \`bkv dev start --node ${node}\` starts it again`,
  );
  return 0;
}

async function startCommand(argv: string[]): Promise<number> {
  const { dir, info, node, json } = nodeArgs(argv);
  const n = info.nodes[node - 1]!;
  if (alive(n.hostPid))
    throw new UsageError(`node ${node} is running (host pid ${n.hostPid}); kill it first`);
  info.nodes[node - 1] = await startHost(dir, n);
  writeDevInfo(dir, info);
  const hostPid = info.nodes[node - 1]!.hostPid;
  say(
    json,
    { started: node, hostPid },
    `started node ${node} (host pid ${hostPid}); it catches up from the leader`,
  );
  return 0;
}

async function partitionCommand(argv: string[]): Promise<number> {
  const { dir, node, json } = nodeArgs(argv);
  const f = readFaults(dir);
  if (!f.isolated.includes(node)) f.isolated.push(node);
  writeFaults(dir, f);
  say(json, { isolated: f.isolated }, `${isolatedText(f.isolated)}; \`bkv dev heal\` undoes it`);
  return 0;
}

async function healCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { dir: { type: "string" }, json: { type: "boolean" } });
  const dir = values.dir ?? DEFAULT_DEV_DIR;
  readDevInfo(dir);
  const f = readFaults(dir);
  writeFaults(dir, { ...f, isolated: [] });
  say(values.json === true, { isolated: [] }, "healed: no node is cut off");
  return 0;
}

async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { dir: { type: "string" }, json: { type: "boolean" } });
  const dir = values.dir ?? DEFAULT_DEV_DIR;
  const info = readDevInfo(dir);
  const nodes = await Promise.all(info.nodes.map(nodeStatus));
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ dir: info.dir, nodes })}\n`);
  } else {
    for (const s of nodes) {
      const until = Number(s.recoverUntil ?? 0);
      process.stdout.write(
        `node ${s.node}  ${String(s.role ?? s.status).padEnd(14)} term ${s.term ?? "-"}  commit ${s.commitIndex ?? "-"}  ` +
          `leader ${s.leader ?? "-"}  host pid ${s.hostPid ?? "-"}  hsm pid ${s.hsmPid ?? "-"}  ${s.url}` +
          `${until > 0 ? `  (storage rolled back: recovering until index ${until})` : ""}\n`,
      );
    }
    const why = whyNoLeader(nodes);
    if (why !== null) process.stdout.write(`${why}\n`);
  }
  return 0;
}

/** When no node leads: which nodes are recovering and down, and what would bring the fleet back. */
export function whyNoLeader(nodes: Record<string, unknown>[]): string | null {
  if (nodes.some((s) => s.role === "leader")) return null;
  const recovering = nodes.filter((s) => Number(s.recoverUntil ?? 0) > 0);
  const down = nodes.filter((s) => s.status === "down" || s.status === "failed");
  const quorum = Math.floor(nodes.length / 2) + 1;
  const voters = nodes.length - recovering.length - down.length;
  const parts = [`no leader: ${voters} of ${nodes.length} nodes can campaign, a majority is ${quorum}`];
  if (recovering.length > 0)
    parts.push(
      `recovering (host storage rolled back): ${recovering.map((s) => `node ${s.node} until index ${s.recoverUntil}`).join(", ")}; ` +
        "each votes only for a member whose log reaches that index, so the fleet comes back once such a member runs",
    );
  if (down.length > 0) parts.push(`down or failed: ${down.map((s) => `node ${s.node}`).join(", ")}`);
  return parts.join("; ");
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  token: tokenCommand,
  kill: killCommand,
  start: startCommand,
  partition: partitionCommand,
  heal: healCommand,
  status: statusCommand,
};

/** The demo web app (its own process): the page, the SDK's browser build, dev tokens, stand-in cloud storage. */
async function startWeb(dir: string, port: number, nodes: DevNode[], pins: TrustSettings): Promise<number> {
  const p = devPaths(dir);
  const webDir = join(p.dir, "web");
  mkdirSync(webDir, { recursive: true, mode: 0o700 });
  const config: WebConfig = {
    hosts: nodes.map((n) => n.url),
    pins,
    tokenKey: p.tokenKey,
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    rpName: "Backup Key Vault (development)",
  };
  const configPath = join(webDir, "config.json");
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const main = createRequire(import.meta.url).resolve("@bkv/web/web-main");
  const s = await spawnService(
    [process.execPath, main, "--dir", webDir, "--listen", `127.0.0.1:${port}`, "--config", configPath],
    webDir,
    "web",
  );
  return s.pid;
}

export async function devCommand(argv: string[]): Promise<number> {
  const sub = argv[0] === undefined ? undefined : SUBCOMMANDS[argv[0]];
  if (sub !== undefined) return sub(argv.slice(1));
  const { values } = parse(argv, {
    dir: { type: "string" },
    port: { type: "string" },
    nodes: { type: "string" },
    latency: { type: "string" },
    "guess-limit": { type: "string" },
    "rate-limit": { type: "string" },
    platform: { type: "string" },
    namespace: { type: "string" },
  });
  const rateLimit = values["rate-limit"] ?? "on";
  if (rateLimit !== "on" && rateLimit !== "off") throw new UsageError("--rate-limit must be on or off");
  const p = devPaths(values.dir ?? DEFAULT_DEV_DIR);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  if (existsSync(p.devJson)) {
    // A fleet of this folder is running, or its supervisor died and left its hosts behind.
    const old = readDevInfo(p.dir);
    if (alive(old.pid) && old.pid !== process.pid)
      throw new UsageError(`bkv dev is already running on ${p.dir} (pid ${old.pid})`);
    await Promise.all(old.nodes.map((n) => (alive(n.hostPid) ? stopProcess(n.hostPid!) : undefined)));
    await Promise.all((old.servicePids ?? []).map((pid) => (alive(pid) ? stopProcess(pid) : undefined)));
    rmSync(p.devJson, { force: true });
  }
  const fleet = readDevFleet(p.dir);
  const platform = platformName(values.platform, fleet?.platform ?? "software");
  if (fleet !== null && fleet.platform !== platform) {
    throw new UsageError(`${p.dir} holds a fleet on the ${fleet.platform} platform; it cannot move`);
  }
  const count = intFlag(values.nodes, "--nodes", fleet?.members.length ?? 5, 1, 9);
  if (count % 2 === 0)
    throw new UsageError("--nodes must be odd (1, 3, 5, 7 or 9): a majority must be unambiguous");
  if (fleet !== null && fleet.members.length !== count) {
    throw new UsageError(`${p.dir} holds a fleet of ${fleet.members.length}; membership is fixed at genesis`);
  }
  // A fleet is frozen to its namespace at genesis: a resumed folder keeps its own.
  const namespace = namespaceFlag(values.namespace, fleet?.namespace ?? "bkv-dev");
  if (fleet !== null && fleet.namespace !== namespace) {
    throw new UsageError(`${p.dir} holds a fleet of namespace ${fleet.namespace}; it is frozen at genesis`);
  }
  const basePort = intFlag(values.port, "--port", 8480, 0, 65535 - 50);
  const guessLimit = intFlag(
    values["guess-limit"],
    "--guess-limit",
    fleet?.guessesAllowed ?? DEFAULT_GUESS_LIMIT,
    1,
    100,
  );
  // Like --nodes: the guess limit is frozen at genesis, so a resumed folder refuses another one.
  if (fleet !== null && values["guess-limit"] !== undefined && fleet.guessesAllowed !== guessLimit) {
    throw new UsageError(
      `${p.dir} holds a fleet with a guess limit of ${fleet.guessesAllowed}; it is fixed at genesis`,
    );
  }
  writeFaults(p.dir, { isolated: [], latencyMs: intFlag(values.latency, "--latency", 0, 0, 10_000) });
  if (!existsSync(p.tokenKey))
    writeFileSync(p.tokenKey, `${JSON.stringify(await newTokenKey())}\n`, { mode: 0o600 });
  const tokenKey = JSON.parse(readFileSync(p.tokenKey, "utf8"));

  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(basePort === 0 ? await freePort() : basePort + i);
  // Each host's peer listener, for the other hosts only (the client API port takes no peer streams).
  const peerPorts: number[] = [];
  for (let i = 0; i < count; i++) peerPorts.push(basePort === 0 ? await freePort() : basePort + 30 + i);
  // Each host's metrics listener (GET /metrics), on loopback like everything of `bkv dev`.
  const metricsPorts: number[] = [];
  for (let i = 0; i < count; i++) metricsPorts.push(basePort === 0 ? await freePort() : basePort + 40 + i);
  // The demo web app's origin, which the hosts let call them from browsers.
  const webPort = basePort === 0 ? await freePort() : basePort + 20;
  // localhost, not 127.0.0.1: browsers accept no IP address as a passkey's relying party.
  const webUrl = `http://localhost:${webPort}`;
  const nodes: DevNode[] = [];
  const configs: HostConfig[] = [];
  // Host keys: made once per node (kept when the folder is resumed); each config lists the others'.
  const hostKeys: string[] = [];
  for (let i = 1; i <= count; i++) {
    mkdirSync(p.hsmDir(i), { recursive: true, mode: 0o700 });
    mkdirSync(p.hostDir(i), { recursive: true, mode: 0o700 });
    hostKeys.push(
      existsSync(p.hostKey(i)) ? toHex(readHostKey(p.hostKey(i)).publicKey) : writeNewHostKey(p.hostKey(i)),
    );
  }
  for (let i = 1; i <= count; i++) {
    configs.push({
      node: i,
      listen: { host: "127.0.0.1", port: ports[i - 1]! },
      peerListen: { host: "127.0.0.1", port: peerPorts[i - 1]! },
      metricsListen: { host: "127.0.0.1", port: metricsPorts[i - 1]! },
      hostKeyFile: p.hostKey(i),
      storagePath: join(p.hostDir(i), "vault.sqlite"),
      hsmCommand: hsmCommand(p.dir, i, platform),
      peers: ports
        .map((port, k) => ({
          node: k + 1,
          url: `http://127.0.0.1:${port}`,
          peerAddress: { host: "127.0.0.1", port: peerPorts[k]! },
          hostKey: hostKeys[k]!,
        }))
        .filter((x) => x.node !== i),
      faultsFile: p.faultsJson,
      corsOrigins: [webUrl, `http://127.0.0.1:${webPort}`],
      auth: { issuer: DEV_ISSUER, audience: DEV_AUDIENCE, publicKeyJwk: publicJwk(tokenKey) },
      rateLimits:
        rateLimit === "on"
          ? {
              perUser: { capacity: 60, refillPerSecond: 10 },
              perAddress: { capacity: 100_000, refillPerSecond: 100_000 },
            }
          : {
              perUser: { capacity: 1e9, refillPerSecond: 1e9 },
              perAddress: { capacity: 1e9, refillPerSecond: 1e9 },
            },
    });
    nodes.push({
      node: i,
      url: `http://127.0.0.1:${ports[i - 1]}`,
      peer: `127.0.0.1:${peerPorts[i - 1]}`,
      metrics: `http://127.0.0.1:${metricsPorts[i - 1]}`,
      hostPid: null,
      hsmPid: null,
      config: join(p.hostDir(i), "config.json"),
    });
  }

  // Fixed ports are checked before anything starts (and before a new folder's genesis), so a port
  // in use is reported by name, with its holder, and nothing is left half started.
  if (basePort !== 0) {
    await portsFree([
      ...ports.map((port, i) => [`node ${i + 1}'s client listener`, port] as const),
      ...peerPorts.map((port, i) => [`node ${i + 1}'s peer listener`, port] as const),
      ...metricsPorts.map((port, i) => [`node ${i + 1}'s metrics listener`, port] as const),
      ...Array.from(
        { length: WITNESSES + 1 },
        (_, k) => [k === 0 ? "the log" : `witness ${k}`, basePort + 10 + k] as const,
      ),
      ["the demo page", webPort] as const,
    ]);
  }
  await ensureCore();
  if (fleet !== null) await provisionDevHsms(p.dir, count, platform); // new keys (NVRAM wiped) or a rebuilt core

  const info: DevInfo = { vault: nodes[0]!.url, dir: p.dir, pid: process.pid, nodes, servicePids: [] };
  // Every process this command started: what it holds in memory (a start that failed halfway has
  // not written the last ones to dev.json yet) and what dev.json names (`bkv dev start --node N`
  // records the hosts it restarted there).
  const stopAll = async () => {
    const hosts = new Set<number>();
    const services = new Set<number>(info.servicePids ?? []);
    for (const n of info.nodes) if (n.hostPid !== null) hosts.add(n.hostPid);
    try {
      const current = readDevInfo(p.dir);
      for (const n of current.nodes) if (n.hostPid !== null) hosts.add(n.hostPid);
      for (const pid of current.servicePids ?? []) services.add(pid);
    } catch {
      // only what we started
    }
    await Promise.all([...hosts].map((pid) => (alive(pid) ? stopProcess(pid) : undefined)));
    await Promise.all([...services].map((pid) => (alive(pid) ? stopProcess(pid) : undefined)));
    rmSync(p.devJson, { force: true });
  };
  // From here on, a signal (Ctrl-C, kill, a closed terminal) or the death of the parent (npm, which
  // does not pass SIGTERM on, or a closed terminal's shell) stops every process this command
  // started. During the start the signal only marks it: the next step throws and the start's own
  // clean-up stops what is already running, so no process spawned meanwhile is left behind.
  const stop = stopSignal();
  const step = () => {
    if (stop.requested() !== null) throw new Error(`stopped by ${stop.requested()} while starting`);
  };
  let transparency: RunningTransparency;
  let devFleet: DevFleet;
  try {
    // The log and witnesses first: genesis freezes the log's key, and the hosts follow the log for
    // their fleet's validation bundle.
    const servicePorts = Array.from({ length: WITNESSES + 1 }, (_, k) =>
      basePort === 0 ? 0 : basePort + 10 + k,
    );
    transparency = await startTransparency(p.dir, servicePorts, namespace);
    info.servicePids = transparency.pids;
    writeDevInfo(p.dir, info);
    step();
    const logKey = parseVerifierKey(transparency.info.logKey).publicKey;
    // Genesis freezes the folder's release key: the key trust.json, the log and the monitor pin.
    const releases = transparency.info.releases;
    if (releases === undefined) throw new Error("this folder's log has no releases namespace");
    const releaseKey = fromHex(releases.key);
    // And the folder's own witnesses, the ones its log asks to cosign and trust.json pins.
    const witnessPolicy = {
      witnesses: transparency.info.witnessKeys.map((k) => {
        const v = parseVerifierKey(k);
        return { name: v.name, key: v.publicKey };
      }),
      threshold: transparency.info.witnessThreshold,
    };
    devFleet =
      fleet ??
      (await createDevFleet(
        p.dir,
        count,
        { guessLimit, namespace, epoch: transparency.info.epoch, logKey, releaseKey, witnessPolicy },
        platform,
      ));
    if (devFleet.logKey !== toHex(logKey) || devFleet.epoch !== transparency.info.epoch) {
      throw new UsageError(
        `${p.dir} holds a fleet frozen to another log key or epoch than this folder's log (${join(p.dir, "log")}): ` +
          "the fleet counter-signs only what its own log signed",
      );
    }
    if (devFleet.releaseKey !== releases.key) {
      throw new UsageError(
        `${p.dir} holds a fleet frozen to another release key than this folder's (${join(p.dir, "release.key")}): ` +
          "it would accept successors released under a key this folder does not hold",
      );
    }
    const frozenWitnesses = JSON.stringify([devFleet.witnesses, devFleet.witnessThreshold]);
    const ownWitnesses = JSON.stringify([
      witnessPolicy.witnesses.map((w) => ({ name: w.name, key: toHex(w.key) })),
      witnessPolicy.threshold,
    ]);
    if (frozenWitnesses !== ownWitnesses) {
      throw new UsageError(
        `${p.dir} holds a fleet frozen to other witnesses than this folder's log uses: ` +
          "it would check its successor's log entries under witnesses this folder does not run",
      );
    }
    await publishFleet(p.dir, transparency.info);
    // The build's code is published under the folder's release key; trust.json pins that key,
    // not the measurement (clients accept what is released in the log, not what a host says).
    await publishDevRelease(p.dir, transparency.info, devFleet.measurement);
    const t = transparency.info;
    writeTransparencyInfo(p.dir, t);
    const pins: TrustSettings = {
      logKey: t.logKey,
      witnessKeys: t.witnessKeys,
      witnessThreshold: t.witnessThreshold,
      namespace: t.namespace,
      // This folder's vendor root is a test root (its private key is on this machine): pinned as one,
      // and allowed, for development only. A real deployment pins its vendors' roots.
      vendorRoots: [
        { name: "bkv dev vendor root", key: toHex(readVendorRootPub(p.vendorRootPub)), test: true },
      ],
      allowTestRoots: true,
      measurements: [],
      ...(t.releases === undefined
        ? {}
        : { release: { key: t.releases.key, namespace: t.releases.namespace } }),
      maxGuessLimit: devFleet.guessesAllowed ?? DEFAULT_GUESS_LIMIT,
      ...(devFleet.members.length < 3 ? { allowSmallFleet: true } : {}),
    };
    writeFileSync(p.trustJson, `${JSON.stringify(pins, null, 2)}\n`);
    for (const [i, c] of configs.entries()) {
      const config: HostConfig = {
        ...c,
        transparency: {
          log: t.log,
          namespace: t.namespace,
          epoch: t.epoch,
          ...(t.releases === undefined ? {} : { releases: t.releases.namespace }),
        },
      };
      writeFileSync(nodes[i]!.config, `${JSON.stringify(config, null, 2)}\n`);
    }
    for (const [i, n] of nodes.entries()) {
      nodes[i] = await startHost(p.dir, n);
      writeDevInfo(p.dir, info);
      step();
    }
    await waitForLeader(info);
    step();
    info.servicePids!.push(await startWeb(p.dir, webPort, nodes, pins));
    writeDevInfo(p.dir, info);
    step();
  } catch (e) {
    stop.dispose();
    await stopAll();
    process.stderr.write(`bkv dev: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(
    `${JSON.stringify({
      vault: info.vault,
      dir: p.dir,
      trust: p.trustJson,
      fleetId: devFleet.fleetId,
      platform,
      measurement: devFleet.measurement,
      evidence: p.evidence,
      vendorRoot: p.vendorRootPub,
      log: transparency.info.log,
      logKey: transparency.info.logKey,
      witnessKeys: transparency.info.witnessKeys,
      namespace: transparency.info.namespace,
      web: webUrl,
      transparency: transparencyUrl(transparency.info, readVendorRootPub(p.vendorRootPub), {
        testRoot: true,
        smallFleet: devFleet.members.length < 3,
      }),
      nodes: nodes.map((n) => ({ node: n.node, url: n.url })),
    })}\n`,
  );
  process.stderr.write(
    `bkv dev: ${nodes.length} node${nodes.length === 1 ? "" : "s"} ready; demo page ${webUrl}; ` +
      `vault ${info.vault}; folder ${p.dir} (Ctrl-C stops the fleet)\n`,
  );
  // The hosts run in their own process groups; this process stays until it is told to stop them.
  const why = await stop.wait();
  process.stderr.write(`bkv dev: ${why}: stopping the fleet\n`);
  await stopAll();
  stop.dispose();
  return 0;
}

/** Each port free on 127.0.0.1, else a usage error naming it, its holder and the way out. */
async function portsFree(wanted: readonly (readonly [string, number])[]): Promise<void> {
  for (const [what, port] of wanted) {
    const server = createServer();
    try {
      await bind(server, what, "127.0.0.1", port);
    } catch (e) {
      if (e instanceof BkvError && e.code === ErrorCode.PortInUse)
        throw new UsageError(`${e.message}; --port 0 picks free ports`);
      throw e;
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  }
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * What tells `bkv dev` to stop: SIGINT, SIGTERM or SIGHUP, or its parent process going away (the
 * process is then adopted by another, so its parent pid changes; checked every half second).
 */
function stopSignal(): { requested(): string | null; wait(): Promise<string>; dispose(): void } {
  let reason: string | null = null;
  let wake: ((why: string) => void) | null = null;
  const request = (why: string) => {
    if (reason !== null) return;
    reason = why;
    wake?.(why);
  };
  const handlers = STOP_SIGNALS.map((sig) => {
    const h = () => request(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) request("its parent process exited");
  }, 500);
  return {
    requested: () => reason,
    wait: () =>
      new Promise<string>((resolve) => {
        if (reason !== null) resolve(reason);
        else wake = resolve;
      }),
    dispose: () => {
      clearInterval(watch);
      for (const [sig, h] of handlers) process.off(sig, h);
    },
  };
}
