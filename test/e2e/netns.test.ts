/**
 * The fleet on separate network hosts (issue 15 item 3). As root, one Linux network namespace per
 * data center, each with one veth on a bridge that lives in a "switch" namespace of its own (the
 * root namespace is untouched), and an operator's namespace on the same bridge. Each data center
 * runs `bkv host --config FILE` with its own address, TLS (a test CA), admin key, host key and a
 * software HSM provisioned by the factory tool. From the operator's namespace, `bkv fleet create
 * --hosts` runs the genesis ceremony over the network; then the leader's link is taken down (a
 * partition: the other two elect a leader of their own and keep it), brought back (it rejoins), and
 * a host is killed with SIGKILL and restarted from the same config (it rejoins the same fleet).
 * The transparency log and two witnesses run in the operator's namespace (the flags `bkv dev` gives
 * them); the operator publishes the fleet and the build's release there and pins them in a
 * trust.json. Then `bkv vault register` and `recover` run from the operator's namespace over TLS:
 * a wrong PIN costs exactly one guess, the right PIN gives back the same key, the count continues
 * exactly through a surviving host while the leader is cut off, and with two of three hosts cut off
 * recover exits 5 and uses no guess.
 * Every namespace this test made is deleted in afterAll, pass or fail.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { newVendorRoot, readVendorRootPub, writeVendorRoot } from "@bkv/hsm-software";
import { generateSignerKey, SIG_COSIGNATURE_V1, SIG_ED25519 } from "@bkv/tlog";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const BKV = join(ROOT, "packages", "cli", "bin", "bkv.js");
const CORE = join(ROOT, "build", "hsm-core.js");
const PROVISION = join(ROOT, "packages", "hsm-software", "dist", "provision.js");
const LOG_MAIN = join(ROOT, "packages", "log", "dist", "log-main.js");
const WITNESS_MAIN = join(ROOT, "packages", "log", "dist", "witness-main.js");
const TRANSPARENCY_SETUP = join(ROOT, "packages", "cli", "dist", "transparency-setup.js");
const NODES = [1, 2, 3] as const;
const CLIENT_PORT = 8443;
const ADMIN_PORT = 8444;
const PEER_PORT = 8445;
/** The transparency log and its two witnesses listen in the operator's namespace. */
const LOG_PORT = 8600;
const WITNESS_PORTS = [8601, 8602] as const;
const NAMESPACE = "bkv-netns";
const RELEASES = `${NAMESPACE}-releases`;
const LOG_ORIGIN = "localhost/bkv-netns/log";
const GUESS_LIMIT = 5;
const ISSUER = "https://login.example.net";
const AUDIENCE = "bkv-vault";

/** Names unique to this run (interface and namespace names stay well under 15 characters). */
const TAG = `bkv${process.pid % 100000}`;
const ns = (i: number) => `${TAG}-${i}`;
const SWITCH = `${TAG}-sw`;
const OPERATOR = `${TAG}-op`;
/** A /24 of its own per run: 10.X.Y.0/24; data center i is .i, the operator .100. */
const NET = `10.${randomInt(100, 200)}.${randomInt(1, 250)}`;
const addr = (i: number) => `${NET}.${i}`;
const OPERATOR_ADDR = `${NET}.100`;

const madeNamespaces: string[] = [];
let work: string;
/** The operator's fleet folder: evidence, artifact, submitter and release keys, trust.json. */
let fleetDir: string;
let logKey: string;
let witnessKeys: string[];
let releaseKeyHex: string;
let mintToken: (user: string) => Promise<string>;
const hosts = new Map<number, { child: ChildProcess; hsmPid: number; stderr: () => string }>();
/** Every host process this test started, ready or not: afterAll stops each one still running. */
const spawned: ChildProcess[] = [];

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8" });
}

function addNamespace(name: string): void {
  ip("netns", "add", name);
  madeNamespaces.push(name);
  ip("-n", name, "link", "set", "lo", "up");
}

/** A veth from the switch's bridge into namespace `name`, as eth0 with `address`/24. */
function plug(name: string, port: string, address: string): void {
  ip("-n", SWITCH, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name);
  ip("-n", SWITCH, "link", "set", port, "master", "br0");
  ip("-n", SWITCH, "link", "set", port, "up");
  ip("-n", name, "addr", "add", `${address}/24`, "dev", "eth0");
  ip("-n", name, "link", "set", "eth0", "up");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `probe` until it returns a value (not undefined), at most `tries` times; else throw with `what`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, tries = 120): Promise<T> {
  let last: unknown;
  for (let k = 0; k < tries; k++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(500);
  }
  throw new Error(`gave up waiting for ${what}${last === undefined ? "" : `: ${(last as Error).message}`}`);
}

/** Run node in a namespace (a program of this test, or the bkv CLI); never throws on exit codes. */
async function nodeIn(
  name: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)("ip", ["netns", "exec", name, process.execPath, ...args], {
      encoding: "utf8",
      timeout: 120_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

interface Status {
  node: number;
  state: string;
  fleetId?: string;
  raft?: { role: string; term: number; leader: number; commitIndex: number };
}

/**
 * Every admin listener's /admin/v1/status, asked from the operator's namespace over TLS with the
 * test CA: a status per node, or null for a node that could not be reached.
 */
async function statuses(nodes: readonly number[] = NODES): Promise<Map<number, Status | null>> {
  const r = await nodeIn(OPERATOR, [
    join(work, "probe.mjs"),
    join(work, "ca.pem"),
    join(work, "admin.key"),
    ...nodes.map((i) => `https://${addr(i)}:${ADMIN_PORT}`),
  ]);
  if (r.code !== 0) throw new Error(`probe failed: ${r.stderr}`);
  const list = JSON.parse(r.stdout) as (Status | null)[];
  return new Map(nodes.map((i, k) => [i, list[k] ?? null]));
}

/** All of `nodes` serving fleet `fleetId` and agreeing on one leader among them and one term. */
async function agreedLeader(
  fleetId: string,
  nodes: readonly number[],
): Promise<{ leader: number; term: number } | undefined> {
  const st = await statuses(nodes);
  const views = nodes.map((i) => st.get(i));
  if (views.some((s) => s == null || s.state !== "serving" || s.fleetId !== fleetId || s.raft === undefined))
    return undefined;
  const leader = views[0]!.raft!.leader;
  const term = views[0]!.raft!.term;
  if (!nodes.includes(leader)) return undefined;
  if (views.some((s) => s!.raft!.leader !== leader || s!.raft!.term !== term)) return undefined;
  if (st.get(leader)!.raft!.role !== "leader") return undefined;
  return { leader, term };
}

/** Start node i's host in its namespace; resolves with its ready line's hsmPid. */
function startHostIn(i: number): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(
      "ip",
      ["netns", "exec", ns(i), process.execPath, BKV, "host", "--config", join(work, `host-${i}.json`)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    spawned.push(child);
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const timer = setTimeout(() => rej(new Error(`node ${i}'s host did not start: ${err}`)), 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`node ${i}'s host exited ${code}: ${err}`));
    });
    child.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      const ready = JSON.parse(out.slice(0, nl)) as { node: number; hsmPid: number };
      hosts.set(i, { child, hsmPid: ready.hsmPid, stderr: () => err });
      res();
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Start a long-running service (log, witness) in a namespace; resolves with its JSON ready line. */
function startServiceIn(name: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const child = spawn("ip", ["netns", "exec", name, process.execPath, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    spawned.push(child);
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const timer = setTimeout(() => rej(new Error(`${args[0]} did not start: ${err}`)), 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`${args[0]} exited ${code}: ${err}`));
    });
    child.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      res(JSON.parse(out.slice(0, nl)) as Record<string, unknown>);
    });
  });
}

/** An Ed25519 signing key file as the CLI keeps one (a comment line, the seed in hex); its public key in hex. */
function writeSigningKey(path: string): string {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  writeFileSync(path, `# test key\n${Buffer.from(jwk.d!, "base64url").toString("hex")}\n`, { mode: 0o600 });
  return Buffer.from(jwk.x!, "base64url").toString("hex");
}

interface VaultResult {
  code: number;
  out: { ok: boolean; error?: string; guessesAllowed?: number; guessesRemaining?: number };
  stderr: string;
}

/**
 * `bkv vault register|recover --json` from the operator's namespace against one host's client URL,
 * the PIN on stdin, a fresh token in a file, TLS trusting the test CA (NODE_EXTRA_CA_CERTS).
 */
async function vault(
  op: "register" | "recover",
  node: number,
  pin: string,
  file: string,
): Promise<VaultResult> {
  const user = "alice@example.net";
  const tokenFile = join(work, "token");
  writeFileSync(tokenFile, `${await mintToken(user)}\n`, { mode: 0o600 });
  const args = [
    BKV,
    "vault",
    op,
    "--vault",
    `https://${addr(node)}:${CLIENT_PORT}`,
    "--token-file",
    tokenFile,
    "--trust",
    join(fleetDir, "trust.json"),
    "--checkpoint",
    join(work, "checkpoint.json"),
    "--user",
    user,
    ...(op === "register" ? ["--key", file] : ["--out", file, "--force"]),
    "--json",
  ];
  return new Promise((res, rej) => {
    const child = spawn("ip", ["netns", "exec", OPERATOR, process.execPath, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(work, "ca.pem") },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", rej);
    child.on("close", (code) => {
      clearTimeout(timer);
      try {
        res({ code: code ?? -1, out: JSON.parse(stdout.trim().split("\n").pop() ?? ""), stderr });
      } catch {
        rej(new Error(`bkv vault ${op} exited ${code} without a JSON line: ${stdout} ${stderr}`));
      }
    });
    child.stdin.end(`${pin}\n`);
  });
}

/** A probe the operator runs: GET /admin/v1/status on each URL with the CA and admin key. */
const PROBE = `
import { request } from "node:https";
import { readFileSync } from "node:fs";
const [ca, keyFile, ...urls] = process.argv.slice(2);
const caPem = readFileSync(ca, "utf8");
const key = readFileSync(keyFile, "utf8").trim();
const one = (u) => new Promise((res) => {
  const req = request(new URL("/admin/v1/status", u), { ca: caPem, headers: { authorization: "Bearer " + key }, timeout: 3000 }, (r) => {
    let b = ""; r.on("data", (d) => { b += d; }); r.on("end", () => { try { res(r.statusCode === 200 ? JSON.parse(b) : null); } catch { res(null); } });
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", () => res(null));
  req.end();
});
process.stdout.write(JSON.stringify(await Promise.all(urls.map(one))));
`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "bkv-netns-"));
  writeFileSync(join(work, "probe.mjs"), PROBE);

  // The network: a bridge in the switch's namespace, one port per data center and the operator.
  addNamespace(SWITCH);
  ip("-n", SWITCH, "link", "add", "br0", "type", "bridge");
  ip("-n", SWITCH, "link", "set", "br0", "up");
  for (const i of NODES) {
    addNamespace(ns(i));
    plug(ns(i), `dc${i}`, addr(i));
  }
  addNamespace(OPERATOR);
  plug(OPERATOR, "op", OPERATOR_ADDR);

  // The operator's secrets and the test CA.
  const adminKey = randomBytes(32).toString("base64url");
  writeFileSync(join(work, "admin.key"), `${adminKey}\n`, { mode: 0o600 });
  const adminKeySha256 = createHash("sha256").update(adminKey).digest("hex");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${TAG} test CA`,
      "-keyout",
      join(work, "ca.key"),
      "-out",
      join(work, "ca.pem"),
    ],
    { stdio: "ignore" },
  );
  const vendorKey = join(work, "vendor-root.key");
  writeVendorRoot(newVendorRoot(), vendorKey, join(work, "vendor-root.pub"));
  // The identity provider's token key: the hosts pin its public half, the test mints with the other.
  const issuerKeys = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const issuer = await exportJWK(issuerKeys.publicKey);
  mintToken = (user) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA" })
      .setSubject(user)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("10m")
      .sign(issuerKeys.privateKey);

  // The transparency log and two witnesses, in the operator's namespace at its address, with the
  // flags \`bkv dev\` gives them: the deployment's namespace and its releases namespace, both under
  // the operator's submitter key; the release key; the test vendor root and the built core's
  // measurement as the evidence policy.
  fleetDir = join(work, "fleet");
  mkdirSync(fleetDir, { mode: 0o700 });
  const submitterHex = writeSigningKey(join(fleetDir, "submitter.key"));
  releaseKeyHex = writeSigningKey(join(fleetDir, "release.key"));
  const logDir = join(work, "log");
  mkdirSync(logDir, { mode: 0o700 });
  const logSigner = generateSignerKey(LOG_ORIGIN, SIG_ED25519);
  writeFileSync(join(logDir, "log.key"), `${logSigner.skey}\n`, { mode: 0o600 });
  logKey = logSigner.vkey;
  const witnesses: { url: string; key: string }[] = [];
  for (const [k, port] of WITNESS_PORTS.entries()) {
    const wDir = join(work, `witness-${k + 1}`);
    mkdirSync(wDir, { mode: 0o700 });
    const name = `localhost/bkv-netns/witness-${k + 1}`;
    const signer = generateSignerKey(name, SIG_COSIGNATURE_V1);
    writeFileSync(join(wDir, "witness.key"), `${signer.skey}\n`, { mode: 0o600 });
    const ready = await startServiceIn(OPERATOR, [
      WITNESS_MAIN,
      "--dir",
      wDir,
      "--listen",
      `${OPERATOR_ADDR}:${port}`,
      "--name",
      name,
      "--log",
      `${LOG_ORIGIN}=${logKey}`,
    ]);
    witnesses.push({ url: String(ready.url), key: signer.vkey });
  }
  witnessKeys = witnesses.map((w) => w.key);
  const measurement = createHash("sha256").update(readFileSync(CORE)).digest("hex");
  const logReady = await startServiceIn(OPERATOR, [
    LOG_MAIN,
    "--dir",
    logDir,
    "--listen",
    `${OPERATOR_ADDR}:${LOG_PORT}`,
    "--origin",
    LOG_ORIGIN,
    ...witnesses.flatMap((w) => ["--witness", `${w.url}=${w.key}`]),
    "--witness-threshold",
    String(witnesses.length),
    "--namespace",
    `${NAMESPACE}=${submitterHex}`,
    "--namespace",
    `${RELEASES}=${submitterHex}`,
    "--release-key",
    `${RELEASES}=${releaseKeyHex}`,
    "--vendor-root",
    Buffer.from(readVendorRootPub(join(work, "vendor-root.pub"))).toString("hex"),
    "--measurement",
    measurement,
  ]);
  expect(logReady.logKey).toBe(logKey);
  // What the client pins, as \`bkv dev\` writes it: the log, the witnesses, the namespace, the test
  // vendor root (allowed as a test root), the release key, the highest guess limit it accepts.
  writeFileSync(
    join(fleetDir, "trust.json"),
    JSON.stringify({
      logKey,
      witnessKeys,
      witnessThreshold: witnesses.length,
      namespace: NAMESPACE,
      vendorRoots: [
        {
          name: "netns test vendor root",
          key: Buffer.from(readVendorRootPub(join(work, "vendor-root.pub"))).toString("hex"),
          test: true,
        },
      ],
      allowTestRoots: true,
      measurements: [],
      release: { key: releaseKeyHex, namespace: RELEASES },
      maxGuessLimit: GUESS_LIMIT,
    }),
  );

  const hostKeys = new Map<number, string>();
  for (const i of NODES) {
    const d = join(work, `node-${i}`);
    mkdirSync(join(d, "hsm"), { recursive: true, mode: 0o700 });
    // The host key, as an operator makes it.
    const r = execFileSync(process.execPath, [BKV, "host", "key", "--out", join(d, "host-key.pem")], {
      encoding: "utf8",
    });
    hostKeys.set(i, (JSON.parse(r) as { hostKey: string }).hostKey);
    // The factory provisions the HSM (its keys attested by the test vendor root, for this core).
    execFileSync(
      process.execPath,
      [PROVISION, "--dir", join(d, "hsm"), "--vendor-key", vendorKey, "--core", CORE],
      {
        env: {},
        stdio: "ignore",
      },
    );
    // A TLS certificate for the host's address, issued by the test CA.
    writeFileSync(join(d, "ext.cnf"), `subjectAltName=IP:${addr(i)}\n`);
    execFileSync(
      "openssl",
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        `/CN=${addr(i)}`,
        "-keyout",
        join(d, "tls.key"),
        "-out",
        join(d, "tls.csr"),
      ],
      { stdio: "ignore" },
    );
    execFileSync(
      "openssl",
      [
        "x509",
        "-req",
        "-in",
        join(d, "tls.csr"),
        "-CA",
        join(work, "ca.pem"),
        "-CAkey",
        join(work, "ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        join(d, "ext.cnf"),
        "-out",
        join(d, "tls.crt"),
      ],
      { stdio: "ignore" },
    );
  }
  for (const i of NODES) {
    const d = join(work, `node-${i}`);
    const config = {
      node: i,
      listen: { host: addr(i), port: CLIENT_PORT },
      tls: { certFile: join(d, "tls.crt"), keyFile: join(d, "tls.key") },
      hostNames: [addr(i)],
      admin: { listen: { host: addr(i), port: ADMIN_PORT }, keySha256: adminKeySha256 },
      peerListen: { host: addr(i), port: PEER_PORT },
      hostKeyFile: join(d, "host-key.pem"),
      hsm: { platform: "software", dir: join(d, "hsm") },
      storagePath: join(d, "vault.sqlite"),
      peers: NODES.filter((j) => j !== i).map((j) => ({
        node: j,
        url: `https://${addr(j)}:${CLIENT_PORT}`,
        peerAddress: { host: addr(j), port: PEER_PORT },
        hostKey: hostKeys.get(j)!,
      })),
      auth: {
        issuer: ISSUER,
        audience: AUDIENCE,
        publicKeyJwk: { kty: issuer.kty, crv: issuer.crv, x: issuer.x },
      },
      transparency: {
        log: `http://${OPERATOR_ADDR}:${LOG_PORT}`,
        namespace: NAMESPACE,
        epoch: 1,
        releases: RELEASES,
        refreshMs: 500,
      },
    };
    writeFileSync(join(work, `host-${i}.json`), JSON.stringify(config, null, 2));
  }
  // Every start settles before a failure is thrown, so afterAll sees every process to stop.
  const started = await Promise.allSettled(NODES.map((i) => startHostIn(i)));
  for (const r of started) if (r.status === "rejected") throw r.reason;
}, 120_000);

afterAll(async () => {
  try {
    const running = spawned.filter((c) => c.exitCode === null && c.signalCode === null);
    const exits = running.map((c) => new Promise((r) => c.once("exit", r)));
    for (const c of running) c.kill("SIGTERM");
    await Promise.race([Promise.all(exits), sleep(10_000)]);
    for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const h of hosts.values()) if (alive(h.hsmPid)) process.kill(h.hsmPid, "SIGKILL");
  } finally {
    // Deleting a namespace deletes the veth ends and the bridge in it.
    for (const name of madeNamespaces.reverse()) {
      try {
        ip("netns", "del", name);
      } catch {
        // already gone
      }
    }
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  }
}, 60_000);

describe("a fleet of three data centers, each in its own network namespace", () => {
  let fleetId: string;

  it("runs the genesis ceremony over the network from the operator's namespace", async () => {
    // Before genesis every host answers its admin listener, uninitialized, at its own address.
    const before = await statuses();
    for (const i of NODES) expect(before.get(i)?.state, `node ${i}`).toBe("uninitialized");

    const out = fleetDir;
    const r = await nodeIn(OPERATOR, [
      BKV,
      "fleet",
      "create",
      "--hosts",
      NODES.map((i) => `https://${addr(i)}:${ADMIN_PORT}`).join(","),
      "--admin-key",
      join(work, "admin.key"),
      "--ca",
      join(work, "ca.pem"),
      "--out",
      out,
      "--log-key",
      logKey,
      "--release-key",
      releaseKeyHex,
      ...witnessKeys.flatMap((k) => ["--witness-key", k]),
      "--witness-threshold",
      String(witnessKeys.length),
      "--namespace",
      NAMESPACE,
      "--guess-limit",
      String(GUESS_LIMIT),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const created = JSON.parse(r.stdout) as { fleetId: string; members: number; measurement: string };
    expect(created.members).toBe(3);
    fleetId = created.fleetId;
    expect(JSON.parse(readFileSync(join(out, "fleet.json"), "utf8")).fleetId).toBe(fleetId);

    // All three serve that fleet and agree on a leader.
    await until("a leader all three agree on", () => agreedLeader(fleetId, NODES));

    // The operator publishes the fleet (artifact and evidence) and the build's release to the log,
    // as \`bkv dev\` does; the hosts follow the log for their validation bundle.
    const info = {
      log: `http://${OPERATOR_ADDR}:${LOG_PORT}`,
      logKey,
      witnessKeys,
      witnessThreshold: witnessKeys.length,
      namespace: NAMESPACE,
      epoch: 1,
      releases: { namespace: RELEASES, key: releaseKeyHex },
    };
    writeFileSync(
      join(work, "publish.mjs"),
      `import { publishFleet, publishDevRelease } from ${JSON.stringify(TRANSPARENCY_SETUP)};\n` +
        `const info = ${JSON.stringify(info)};\n` +
        `await publishFleet(${JSON.stringify(fleetDir)}, info);\n` +
        `await publishDevRelease(${JSON.stringify(fleetDir)}, info, ${JSON.stringify(created.measurement)});\n`,
    );
    const pub = await nodeIn(OPERATOR, [join(work, "publish.mjs")]);
    expect(pub.code, pub.stderr).toBe(0);
  }, 120_000);

  it("a partitioned leader loses its place; the other two elect a leader; back on the network it rejoins", async () => {
    const { leader, term } = await until("a leader", () => agreedLeader(fleetId, NODES));
    const rest = NODES.filter((i) => i !== leader);
    ip("-n", ns(leader), "link", "set", "eth0", "down");
    try {
      // Cut off: the operator cannot reach it, and the two others elect one of themselves.
      const cut = await until("the two others to elect a new leader", async () => {
        const v = await agreedLeader(fleetId, rest);
        return v !== undefined && v.term > term ? v : undefined;
      });
      expect(rest).toContain(cut.leader);
      expect((await statuses([leader])).get(leader)).toBeNull();
    } finally {
      ip("-n", ns(leader), "link", "set", "eth0", "up");
    }
    const healed = await until("all three to agree on a leader again", () => agreedLeader(fleetId, NODES));
    expect(healed.term).toBeGreaterThan(term);
  }, 120_000);

  it("a host killed with SIGKILL and restarted from the same config rejoins the fleet", async () => {
    const { leader } = await until("a leader", () => agreedLeader(fleetId, NODES));
    const victim = NODES.find((i) => i !== leader)!;
    const h = hosts.get(victim)!;
    const exited = new Promise((r) => h.child.once("exit", r));
    h.child.kill("SIGKILL");
    await exited;
    // Its HSM process sees its host gone (stdin closed) and stops; only then is the folder free.
    await until("the killed host's HSM process to stop", async () => (alive(h.hsmPid) ? undefined : true));
    // Meanwhile the other two keep a leader.
    const others = NODES.filter((i) => i !== victim);
    await until("a leader among the two left", () => agreedLeader(fleetId, others));
    expect((await statuses([victim])).get(victim)).toBeNull();

    await startHostIn(victim);
    expect(hosts.get(victim)!.hsmPid).not.toBe(h.hsmPid);
    const back = await until("the restarted host to rejoin", () => agreedLeader(fleetId, NODES));
    expect(NODES).toContain(back.leader);
  }, 120_000);

  const PIN = "4711-netns";
  const WRONG = "0000-wrong";
  let keyFile: string;

  it("registers from the operator's namespace and recovers the same key; a wrong PIN costs exactly one guess", async () => {
    const { leader } = await until("a leader", () => agreedLeader(fleetId, NODES));
    keyFile = join(work, "backup.key");
    writeFileSync(keyFile, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
    // The hosts serve a validation bundle once they have fetched the published fleet from the log.
    const reg = await until(
      "register to succeed",
      async () => {
        const r = await vault("register", leader, PIN, keyFile);
        return r.code === 0 ? r : undefined;
      },
      60,
    );
    expect(reg.out.guessesAllowed).toBe(GUESS_LIMIT);

    const wrong = await vault("recover", leader, WRONG, join(work, "wrong.key"));
    expect(wrong.code, wrong.stderr).toBe(3);
    expect(wrong.out.guessesRemaining).toBe(GUESS_LIMIT - 1);

    const got = join(work, "recovered.key");
    const right = await vault("recover", leader, PIN, got);
    expect(right.code, right.stderr).toBe(0);
    expect(
      readFileSync(got, "utf8")
        .replace(/[^0-9a-f]/g, "")
        .slice(0, 64),
    ).toBe(readFileSync(keyFile, "utf8").trim());
    // A right PIN restores the count; a wrong one then costs one again.
    const again = await vault("recover", leader, WRONG, join(work, "wrong.key"));
    expect(again.code, again.stderr).toBe(3);
    expect(again.out.guessesRemaining).toBe(GUESS_LIMIT - 1);
  }, 150_000);

  it("with the leader's link down, recover through a surviving host continues the count exactly", async () => {
    const { leader } = await until("a leader", () => agreedLeader(fleetId, NODES));
    const survivor = NODES.find((i) => i !== leader)!;
    ip("-n", ns(leader), "link", "set", "eth0", "down");
    try {
      // Until the two others elect a leader the vault has no verdict (exit 5), and no guess is used.
      const wrong = await until(
        "a verdict through a surviving host",
        async () => {
          const r = await vault("recover", survivor, WRONG, join(work, "wrong.key"));
          return r.code === 5 ? undefined : r;
        },
        30,
      );
      expect(wrong.code, wrong.stderr).toBe(3);
      expect(wrong.out.guessesRemaining).toBe(GUESS_LIMIT - 2);
    } finally {
      ip("-n", ns(leader), "link", "set", "eth0", "up");
    }
    await until("all three to agree on a leader again", () => agreedLeader(fleetId, NODES));
  }, 150_000);

  it("with two of three hosts cut off, recover exits 5 and uses no guess; healed, the count continues", async () => {
    // The host left alone is a follower: the request reaches no leader, so no guess is appended
    // anywhere. (Left alone with the leader instead, the leader appends the guess it cannot commit;
    // after healing Raft may commit it or drop it, so that attempt may cost a guess: never a gain.)
    const { leader } = await until("a leader", () => agreedLeader(fleetId, NODES));
    const left = NODES.find((i) => i !== leader)!;
    const cut = NODES.filter((i) => i !== left);
    for (const i of cut) ip("-n", ns(i), "link", "set", "eth0", "down");
    try {
      const r = await vault("recover", left, WRONG, join(work, "wrong.key"));
      expect(r.code, r.stderr).toBe(5);
      expect(r.out.ok).toBe(false);
    } finally {
      for (const i of cut) ip("-n", ns(i), "link", "set", "eth0", "up");
    }
    await until("all three to agree on a leader again", () => agreedLeader(fleetId, NODES));
    const wrong = await until(
      "a verdict after healing",
      async () => {
        const w = await vault("recover", left, WRONG, join(work, "wrong.key"));
        return w.code === 5 ? undefined : w;
      },
      30,
    );
    expect(wrong.code, wrong.stderr).toBe(3);
    // The cut-off attempt gave no verdict; if leadership moved before the cut, Raft may still
    // commit its guess after healing: at most that one guess is lost, and none is ever given back.
    expect([GUESS_LIMIT - 3, GUESS_LIMIT - 4]).toContain(wrong.out.guessesRemaining);
    const got = join(work, "recovered-2.key");
    const right = await vault("recover", left, PIN, got);
    expect(right.code, right.stderr).toBe(0);
    expect(
      readFileSync(got, "utf8")
        .replace(/[^0-9a-f]/g, "")
        .slice(0, 64),
    ).toBe(readFileSync(keyFile, "utf8").trim());
  }, 150_000);
});
