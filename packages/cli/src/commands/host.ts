/**
 * `bkv host --config FILE`: run one host agent (and its HSM process). Prints one JSON line when
 * ready: {"host": URL, "node": I, "hsmPid": PID, "peer": "HOST:PORT" of its peer listener or null}.
 * Stops cleanly on SIGINT/SIGTERM.
 */
import { loadHostConfig, startHost, writeNewHostKey } from "@bkv/host";
import { parse, required } from "../args.js";

export async function hostCommand(argv: string[]): Promise<number> {
  if (argv[0] === "key") return hostKeyCommand(argv.slice(1));
  const { values } = parse(argv, { config: { type: "string" } });
  const config = loadHostConfig(required(values.config, "--config"));
  const host = await startHost(config);
  process.stdout.write(
    `${JSON.stringify({
      host: host.url,
      node: config.node,
      hsmPid: host.hsm.pid ?? null,
      peer: host.peerAddress === null ? null : `${host.peerAddress.host}:${host.peerAddress.port}`,
    })}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
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
