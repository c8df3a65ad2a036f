/**
 * The log process:
 *   node packages/log/dist/log-main.js --dir DIR --listen 127.0.0.1:PORT --origin ORIGIN
 *        [--witness URL=VERIFIERKEY ...] [--witness-threshold N]
 * Prints one JSON line on stdout when ready: {"ready":true,"url":...,"origin":...,"logKey":...};
 * events go to stderr as JSON lines. SIGTERM/SIGINT close it cleanly.
 */
import { logEvent, parseFlags, parseListen, required, splitKeyed } from "./args.js";
import { startLogServer } from "./log-server.js";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), ["witness"]);
  const { host, port } = parseListen(required(flags, "listen"));
  const threshold = flags.get("witness-threshold")?.[0];
  const log = await startLogServer(
    {
      dir: required(flags, "dir"),
      origin: required(flags, "origin"),
      witnesses: (flags.get("witness") ?? []).map((w) => splitKeyed(w, "witness")),
      ...(threshold === undefined ? {} : { witnessThreshold: Number(threshold) }),
    },
    host,
    port,
  );
  const stop = () => {
    log.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(
    `${JSON.stringify({ ready: true, url: log.url, origin: log.service.origin, logKey: log.service.key.vkey })}\n`,
  );
}

main().catch((e: unknown) => {
  logEvent("fatal", { message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
