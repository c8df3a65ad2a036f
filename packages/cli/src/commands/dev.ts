/**
 * `bkv dev`: a local vault with everything it needs, on 127.0.0.1. Each node is a host agent process
 * with its HSM process; DIR keeps all state, so running it again on the same DIR resumes.
 * `bkv dev token --dir DIR --user U` prints a development bearer token for U.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { HostConfig } from "@bkv/host";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { parse, required, UsageError } from "../args.js";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  type DevInfo,
  devPaths,
  mintDevToken,
  newTokenKey,
  publicJwk,
  type TrustSettings,
} from "../dev-files.js";

const BKV_BIN = fileURLToPath(new URL("../../bin/bkv.js", import.meta.url));

function hsmMain(): string {
  return createRequire(import.meta.url).resolve("@bkv/hsm-software/main");
}

/** Wait for the first line of a child's stdout and parse it as JSON. */
function readyLine(child: ChildProcess, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      child.stdout!.off("data", onData);
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      } catch {
        reject(new Error(`${what} printed something that is not its ready line`));
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`${what} exited (code ${code}) before it was ready; see its log`)),
    );
  });
}

async function tokenCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: "string" },
    user: { type: "string" },
    ttl: { type: "string" },
  });
  const dir = required(values.dir, "--dir");
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError("--ttl must be a positive number of seconds");
  process.stdout.write(`${await mintDevToken(dir, required(values.user, "--user"), ttl)}\n`);
  return 0;
}

export async function devCommand(argv: string[]): Promise<number> {
  if (argv[0] === "token") return tokenCommand(argv.slice(1));
  const { values } = parse(argv, {
    dir: { type: "string" },
    port: { type: "string" },
    "guess-limit": { type: "string" },
  });
  const port = values.port === undefined ? 8480 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError("--port must be 0 to 65535");
  const guessLimit =
    values["guess-limit"] === undefined ? DEFAULT_GUESS_LIMIT : Number(values["guess-limit"]);
  if (!Number.isInteger(guessLimit) || guessLimit < 1 || guessLimit > 100) {
    throw new UsageError("--guess-limit must be 1 to 100 (it is fixed when the vault is created)");
  }
  const p = devPaths(values.dir ?? "bkv-dev");
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  if (!existsSync(p.tokenKey)) {
    writeFileSync(p.tokenKey, `${JSON.stringify(await newTokenKey())}\n`, { mode: 0o600 });
  }
  const tokenKey = JSON.parse(readFileSync(p.tokenKey, "utf8"));

  const node = 1;
  mkdirSync(p.hsmDir(node), { recursive: true, mode: 0o700 });
  mkdirSync(p.hostDir(node), { recursive: true, mode: 0o700 });
  const config: HostConfig = {
    node,
    listen: { host: "127.0.0.1", port },
    storagePath: `${p.hostDir(node)}/vault.sqlite`,
    hsmCommand: [process.execPath, hsmMain(), "--dir", p.hsmDir(node)],
    guessLimit,
    auth: { issuer: DEV_ISSUER, audience: DEV_AUDIENCE, publicKeyJwk: publicJwk(tokenKey) },
    rateLimits: {
      perUser: { capacity: 60, refillPerSecond: 10 },
      perAddress: { capacity: 100_000, refillPerSecond: 100_000 },
    },
  };
  const configPath = `${p.hostDir(node)}/config.json`;
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);

  const log = openSync(`${p.hostDir(node)}/host.log`, "a");
  const host = spawn(process.execPath, [BKV_BIN, "host", "--config", configPath], {
    stdio: ["ignore", "pipe", log],
  });
  let ready: Record<string, unknown>;
  try {
    ready = await readyLine(host, `host agent of node ${node}`);
  } catch (e) {
    host.kill("SIGKILL");
    process.stderr.write(`bkv dev: ${(e as Error).message} (${p.hostDir(node)}/host.log)\n`);
    return 1;
  }
  const url = String(ready.host);
  const info = (await (await fetch(`${url}/v1/info`)).json()) as {
    vaultPublicKey?: string;
    guessesAllowed?: number;
  };
  if (typeof info.vaultPublicKey !== "string") {
    host.kill("SIGTERM");
    process.stderr.write(`bkv dev: the vault is not serving; see ${p.hostDir(node)}/host.log\n`);
    return 1;
  }
  const trust: TrustSettings = {
    vaultPublicKey: info.vaultPublicKey,
    guessesAllowed: info.guessesAllowed ?? guessLimit,
  };
  writeFileSync(p.trustJson, `${JSON.stringify(trust, null, 2)}\n`);
  const dev: DevInfo = {
    vault: url,
    dir: p.dir,
    pid: process.pid,
    nodes: [{ node, url, hostPid: host.pid! }],
  };
  writeFileSync(p.devJson, `${JSON.stringify(dev, null, 2)}\n`);
  process.stdout.write(
    `${JSON.stringify({ vault: url, dir: p.dir, trust: p.trustJson, nodes: dev.nodes })}\n`,
  );

  const code = await new Promise<number>((resolve) => {
    const stop = () => {
      host.kill("SIGTERM");
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    host.once("exit", (c, sig) => resolve(c === 0 || sig === "SIGTERM" ? 0 : 1));
  });
  rmSync(p.devJson, { force: true });
  return code;
}
