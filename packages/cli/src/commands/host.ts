/**
 * `bkv host --config FILE`: run one data center's host agent and its HSM process. The config is
 * checked first (host/src/config.ts: every problem a CONFIG error naming the field), every listener
 * is bound before the HSM starts (PORT_IN_USE names the port and its holder). Prints one JSON line
 * when ready: {"host": URL, "node": I, "hsmPid": PID, "peer": "HOST:PORT" | null, "admin": URL | null}.
 * Stops cleanly on SIGINT, SIGTERM and SIGHUP, and when the process named by --exit-with is gone
 * (`bkv dev` passes its own pid, so no host outlives the fleet that started it).
 * `bkv host init --out FILE`: a commented example config, and a new admin key beside it.
 * `bkv host key --out FILE`: a new host key.
 */
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { adminKeyDigest, type HostConfig, readHostConfigFile, startHost, writeNewHostKey } from "@bkv/host";
import { type BkvError, isBkvError } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import { hsmArgv } from "../fleet-setup.js";
import { hostConfigExample } from "../host-config-example.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function hostCommand(argv: string[]): Promise<number> {
  if (argv[0] === "key") return hostKeyCommand(argv.slice(1));
  if (argv[0] === "init") return hostInitCommand(argv.slice(1));
  const { values } = parse(argv, { config: { type: "string" }, "exit-with": { type: "string" } });
  const path = required(values.config, "--config");
  const exitWith =
    values["exit-with"] === undefined ? null : intFlag(values["exit-with"], "--exit-with", 0, 1, 2 ** 31);
  let host: Awaited<ReturnType<typeof startHost>>;
  let config: HostConfig;
  try {
    const file = readHostConfigFile(path);
    config = {
      ...file,
      hsmCommand: file.hsmCommand ?? hsmArgv(file.hsm!.platform, file.hsm!.dir, file.hsm!.core),
    };
    host = await startHost(config);
  } catch (e) {
    if (isBkvError(e)) {
      process.stderr.write(`bkv host: ${(e as BkvError).code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  process.stdout.write(
    `${JSON.stringify({
      host: host.url,
      node: config.node,
      hsmPid: host.hsm.pid ?? null,
      peer: host.peerAddress === null ? null : `${host.peerAddress.host}:${host.peerAddress.port}`,
      admin: host.adminUrl,
    })}\n`,
  );
  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    process.once("SIGHUP", stop);
    if (exitWith !== null) {
      const t = setInterval(() => {
        if (!alive(exitWith)) {
          clearInterval(t);
          stop();
        }
      }, 500);
    }
  });
  await host.close();
  return 0;
}

/**
 * `bkv host key --out FILE`: a new host key (Ed25519, PKCS#8 PEM, mode 0600; never overwrites). The
 * host's config names the file as hostKeyFile; the printed public key goes into every other host's
 * config as this host's peers[].hostKey.
 */
async function hostKeyCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { out: { type: "string" } });
  const out = required(values.out, "--out");
  process.stdout.write(`${JSON.stringify({ hostKeyFile: out, hostKey: writeNewHostKey(out) })}\n`);
  return 0;
}

/**
 * `bkv host init --out FILE [--node I]`: write a commented example config (never overwrites) and a
 * new admin key (FILE's folder/admin.key, mode 0600; the config holds only its SHA-256).
 */
async function hostInitCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { out: { type: "string" }, node: { type: "string" } });
  const out = resolve(required(values.out, "--out"));
  const node = intFlag(values.node, "--node", 1, 1, 9);
  const keyFile = join(dirname(out), "admin.key");
  if (existsSync(out)) throw new UsageError(`${out} exists; init never overwrites a config`);
  if (existsSync(keyFile)) throw new UsageError(`${keyFile} exists; init never overwrites an admin key`);
  const adminKey = randomBytes(32).toString("base64url");
  writeFileSync(keyFile, `${adminKey}\n`, { mode: 0o600, flag: "wx" });
  writeFileSync(out, hostConfigExample(node, adminKeyDigest(adminKey), dirname(out)), { flag: "wx" });
  process.stdout.write(`${JSON.stringify({ config: out, adminKeyFile: keyFile })}\n`);
  return 0;
}
