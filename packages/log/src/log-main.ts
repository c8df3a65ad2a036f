/**
 * The log process:
 *   node packages/log/dist/log-main.js --dir DIR --listen 127.0.0.1:PORT --origin ORIGIN
 *        [--witness URL=VERIFIERKEY ...] [--witness-threshold N]
 *        [--namespace NAME=SUBMITTERKEY ...] [--vendor-root KEY ...] [--measurement HEX ...]
 *        [--max-guess-limit N] [--release-key NAME=RELEASEKEY ...] [--allow-small-fleet yes]
 * --namespace registers a namespace with its submitter's raw Ed25519 public key (64 hex digits):
 * the log writes no other namespace, and only /add calls signed by that key (see log-server.ts).
 * --vendor-root (raw Ed25519, 64 hex digits) and --measurement (64 hex digits) are what the evidence
 * of an appended fleet is checked against; --max-guess-limit defaults to 10. --release-key makes a
 * registered namespace a releases namespace: its entries are release entries signed by that key.
 * --allow-small-fleet yes (development logs only) appends fleets of 1 member too.
 * Prints one JSON line on stdout when ready: {"ready":true,"url":...,"origin":...,"logKey":...};
 * events go to stderr as JSON lines. SIGTERM/SIGINT close it cleanly.
 */
import { hexKey, logEvent, parseFlags, parseListen, required, splitKeyed, splitNamespace } from "./args.js";
import { startLogServer } from "./log-server.js";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [
    "witness",
    "namespace",
    "vendor-root",
    "measurement",
    "release-key",
  ]);
  const { host, port } = parseListen(required(flags, "listen"));
  const threshold = flags.get("witness-threshold")?.[0];
  const maxGuessLimit = flags.get("max-guess-limit")?.[0];
  const releaseKeys = new Map(
    (flags.get("release-key") ?? []).map((r) => {
      const [namespace, key] = splitNamespace(r, "release-key");
      return [namespace, hexKey(key, "release-key")] as const;
    }),
  );
  const namespaces = (flags.get("namespace") ?? []).map((n) => {
    const [namespace, key] = splitNamespace(n);
    const release = releaseKeys.get(namespace);
    releaseKeys.delete(namespace);
    return {
      namespace,
      submitterKey: hexKey(key, "namespace"),
      ...(release === undefined ? {} : { releaseKey: release }),
    };
  });
  if (releaseKeys.size > 0) {
    throw new Error(
      `--release-key for a namespace not registered with --namespace: ${[...releaseKeys.keys()].join(", ")}`,
    );
  }
  const log = await startLogServer(
    {
      dir: required(flags, "dir"),
      origin: required(flags, "origin"),
      witnesses: (flags.get("witness") ?? []).map((w) => splitKeyed(w, "witness")),
      ...(threshold === undefined ? {} : { witnessThreshold: Number(threshold) }),
      namespaces,
      vendorRoots: (flags.get("vendor-root") ?? []).map((k) => hexKey(k, "vendor-root")),
      measurements: (flags.get("measurement") ?? []).map((k) => hexKey(k, "measurement")),
      ...(maxGuessLimit === undefined ? {} : { maxGuessLimit: Number(maxGuessLimit) }),
      allowSmallFleet: flags.get("allow-small-fleet")?.[0] === "yes",
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
