/**
 * The witness process:
 *   node packages/log/dist/witness-main.js --dir DIR --listen 127.0.0.1:PORT --name NAME
 *        --log ORIGIN=VERIFIERKEY [--log ...] [--adopt-state yes|no]
 * --adopt-state yes writes the witness's state record (witness.state) from its database, once, for
 * a witness made before the record existed; see witness-server.ts.
 * Prints one JSON line on stdout when ready: {"ready":true,"url":...,"witnessKey":...} (a
 * cosignature/v1 verifier key); events go to stderr as JSON lines.
 * Exit codes as the log's (log-main.ts): 0 closed on a signal; 2 (EXIT_USAGE) flags it cannot use
 * (a "usage" event on stderr); 1 anything else (a "fatal" event).
 */
import { logEvent } from "./events.js";
import {
  EXIT_FAILURE,
  EXIT_USAGE,
  parseFlags,
  parseListen,
  required,
  splitKeyed,
  UsageError,
  yesNo,
} from "./flags.js";

const USAGE =
  "witness-main --dir DIR --listen HOST:PORT --name NAME --log ORIGIN=VERIFIERKEY [--log ...] [--adopt-state yes|no]";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    dir: {},
    listen: {},
    name: {},
    log: { repeatable: true },
    "adopt-state": {},
  });
  const dir = required(flags.dir, "dir");
  const name = required(flags.name, "name");
  const { host, port } = parseListen(required(flags.listen, "listen"));
  const logs = (flags.log ?? []).map((l) => splitKeyed(l, "log"));
  if (logs.length === 0) throw new UsageError("at least one --log ORIGIN=VERIFIERKEY is required");
  const adoptState = yesNo(flags["adopt-state"], "adopt-state");
  // Loaded once the flags are good: a usage error answers without loading the service.
  const { startWitnessServer } = await import("./witness-server.js");
  const w = await startWitnessServer({ dir, name, logs, adoptState }, host, port);
  const stop = () => {
    w.close().then(
      () => process.exit(0),
      () => process.exit(EXIT_FAILURE),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`${JSON.stringify({ ready: true, url: w.url, witnessKey: w.service.key.vkey })}\n`);
}

main().catch((e: unknown) => {
  if (e instanceof UsageError) {
    logEvent("usage", { message: e.message, usage: USAGE });
    process.exit(EXIT_USAGE);
  }
  logEvent("fatal", { message: e instanceof Error ? e.message : String(e) });
  process.exit(EXIT_FAILURE);
});
