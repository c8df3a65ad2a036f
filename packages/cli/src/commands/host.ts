/**
 * `bkv host --config FILE`: run one host agent (and its HSM process). Prints one JSON line when
 * ready: {"host": URL, "node": I, "hsmPid": PID, "peer": "HOST:PORT" of its peer listener or null}.
 * Stops cleanly on SIGINT/SIGTERM.
 */
import { loadHostConfig, startHost } from "@bkv/host";
import { parse, required } from "../args.js";

export async function hostCommand(argv: string[]): Promise<number> {
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
