/**
 * The log process:
 *   node packages/log/dist/log-main.js --dir DIR --listen 127.0.0.1:PORT --origin ORIGIN
 *        [--witness URL=VERIFIERKEY ...] [--witness-threshold N]
 *        [--namespace NAME=SUBMITTERKEY ...] [--vendor-root KEY ...] [--measurement HEX ...]
 *        [--max-guess-limit N] [--release-key NAME=RELEASEKEY ...] [--handovers NAME=FLEETS ...]
 *        [--allow-small-fleet yes|no]
 * --namespace registers a namespace with its submitter's raw Ed25519 public key (64 hex digits):
 * the log writes no other namespace, and only /add calls signed by that key (see log-server.ts).
 * --vendor-root (raw Ed25519, 64 hex digits) and --measurement (64 hex digits) are what the evidence
 * of an appended fleet is checked against; --max-guess-limit defaults to 10. --release-key makes a
 * registered namespace a releases namespace: its entries are release entries signed by that key.
 * --handovers makes a registered namespace the handovers namespace of the fleets namespace FLEETS:
 * its entries are handover statements signed by those fleets (handover-check.ts).
 * --allow-small-fleet yes (development logs only) appends fleets of 1 member too.
 * Prints one JSON line on stdout when ready: {"ready":true,"url":...,"origin":...,"logKey":...};
 * events go to stderr as JSON lines. SIGTERM/SIGINT close it cleanly.
 * Exit codes: 0 closed on a signal; 2 (EXIT_USAGE) flags it cannot use: an unknown flag, a flag
 * without its value or given twice, a missing or malformed required one (stderr: a "usage" event
 * naming it); 1 anything else (stderr: a "fatal" event).
 */
import { logEvent } from "./events.js";
import {
  EXIT_FAILURE,
  EXIT_USAGE,
  hexKey,
  parseFlags,
  parseListen,
  required,
  splitKeyed,
  splitNamespace,
  UsageError,
  wholeNumber,
  yesNo,
} from "./flags.js";

const USAGE =
  "log-main --dir DIR --listen HOST:PORT --origin ORIGIN [--witness URL=VERIFIERKEY ...] " +
  "[--witness-threshold N] [--namespace NAME=HEXKEY ...] [--vendor-root HEXKEY ...] [--measurement HEX ...] " +
  "[--max-guess-limit N] [--release-key NAME=HEXKEY ...] [--handovers NAME=FLEETS ...] [--allow-small-fleet yes|no]";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    dir: {},
    listen: {},
    origin: {},
    witness: { repeatable: true },
    "witness-threshold": {},
    namespace: { repeatable: true },
    "vendor-root": { repeatable: true },
    measurement: { repeatable: true },
    "max-guess-limit": {},
    "release-key": { repeatable: true },
    handovers: { repeatable: true },
    "allow-small-fleet": {},
  });
  const dir = required(flags.dir, "dir");
  const origin = required(flags.origin, "origin");
  const { host, port } = parseListen(required(flags.listen, "listen"));
  const witnesses = (flags.witness ?? []).map((w) => splitKeyed(w, "witness"));
  const threshold = wholeNumber(flags["witness-threshold"], "witness-threshold", 0, witnesses.length);
  const maxGuessLimit = wholeNumber(flags["max-guess-limit"], "max-guess-limit", 1, 0xffffffff);
  const releaseKeys = new Map(
    (flags["release-key"] ?? []).map((r) => {
      const [namespace, key] = splitNamespace(r, "release-key");
      return [namespace, hexKey(key, "release-key")] as const;
    }),
  );
  const handovers = new Map(
    (flags.handovers ?? []).map((h) => {
      const i = h.indexOf("=");
      if (i <= 0 || i === h.length - 1)
        throw new UsageError(`--handovers wants <handovers namespace>=<fleets namespace>, got ${h}`);
      return [h.slice(0, i), h.slice(i + 1)] as const;
    }),
  );
  const namespaces = (flags.namespace ?? []).map((n) => {
    const [namespace, key] = splitNamespace(n);
    const release = releaseKeys.get(namespace);
    releaseKeys.delete(namespace);
    const handoversOf = handovers.get(namespace);
    handovers.delete(namespace);
    return {
      namespace,
      submitterKey: hexKey(key, "namespace"),
      ...(release === undefined ? {} : { releaseKey: release }),
      ...(handoversOf === undefined ? {} : { handoversOf }),
    };
  });
  if (releaseKeys.size > 0) {
    throw new UsageError(
      `--release-key for a namespace not registered with --namespace: ${[...releaseKeys.keys()].join(", ")}`,
    );
  }
  if (handovers.size > 0) {
    throw new UsageError(
      `--handovers for a namespace not registered with --namespace: ${[...handovers.keys()].join(", ")}`,
    );
  }
  const allowSmallFleet = yesNo(flags["allow-small-fleet"], "allow-small-fleet");
  // Loaded once the flags are good: a usage error answers without loading the service.
  const { startLogServer } = await import("./log-server.js");
  const log = await startLogServer(
    {
      dir,
      origin,
      witnesses,
      ...(threshold === undefined ? {} : { witnessThreshold: threshold }),
      namespaces,
      vendorRoots: (flags["vendor-root"] ?? []).map((k) => hexKey(k, "vendor-root")),
      measurements: (flags.measurement ?? []).map((k) => hexKey(k, "measurement")),
      ...(maxGuessLimit === undefined ? {} : { maxGuessLimit }),
      allowSmallFleet,
    },
    host,
    port,
  );
  const stop = () => {
    log.close().then(
      () => process.exit(0),
      () => process.exit(EXIT_FAILURE),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(
    `${JSON.stringify({ ready: true, url: log.url, origin: log.service.origin, logKey: log.service.key.vkey })}\n`,
  );
}

main().catch((e: unknown) => {
  if (e instanceof UsageError) {
    logEvent("usage", { message: e.message, usage: USAGE });
    process.exit(EXIT_USAGE);
  }
  logEvent("fatal", { message: e instanceof Error ? e.message : String(e) });
  process.exit(EXIT_FAILURE);
});
