/**
 * The witness process:
 *   node packages/log/dist/witness-main.js --dir DIR --listen 127.0.0.1:PORT --name NAME
 *        --log ORIGIN=VERIFIERKEY [--log ...] [--adopt-state yes]
 * --adopt-state yes writes the witness's state record (witness.state) from its database, once, for
 * a witness made before the record existed; see witness-server.ts.
 * Prints one JSON line on stdout when ready: {"ready":true,"url":...,"witnessKey":...} (a
 * cosignature/v1 verifier key); events go to stderr as JSON lines.
 */
import { logEvent, parseFlags, parseListen, required, splitKeyed } from "./args.js";
import { startWitnessServer } from "./witness-server.js";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), ["log"]);
  const { host, port } = parseListen(required(flags, "listen"));
  const logs = (flags.get("log") ?? []).map((l) => splitKeyed(l, "log"));
  if (logs.length === 0) throw new Error("at least one --log ORIGIN=VERIFIERKEY is required");
  const w = await startWitnessServer(
    {
      dir: required(flags, "dir"),
      name: required(flags, "name"),
      logs,
      adoptState: flags.get("adopt-state")?.[0] === "yes",
    },
    host,
    port,
  );
  const stop = () => {
    w.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`${JSON.stringify({ ready: true, url: w.url, witnessKey: w.service.key.vkey })}\n`);
}

main().catch((e: unknown) => {
  logEvent("fatal", { message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
