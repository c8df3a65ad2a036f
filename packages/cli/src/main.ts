/**
 * bkv: the command-line entry point. Each command returns its exit code; these codes are a contract
 * (exit-codes.ts, the README's table). A command's modules are loaded only when it runs, so `--help`,
 * `key new` and `backup` do not pay for the vault, the fleet and the log.
 */

import { UsageError } from "./args.js";
import { EXIT_CODES } from "./exit-codes.js";

export const USAGE = `usage: bkv <command> [options]

  dev [--dir DIR] [--port PORT] [--nodes N] [--latency MS] [--guess-limit G] [--platform software|pkcs11]
      [--namespace NS] [--rate-limit on|off]
                                         run a local fleet in DIR (default ./bkv-dev; 5 nodes). A new
                                         folder's fleet is frozen to --nodes, --guess-limit, --platform
                                         and --namespace (default bkv-dev, epoch 1). Ready: one JSON line
                                         on stdout, a short line on stderr. --rate-limit off lifts the
                                         hosts' per-user limits (load tests)
  dev status [--dir DIR] [--json]        each node's role, term, commit index, leader, process ids
  dev kill|start [--dir DIR] --node I [--json]
                                         SIGKILL node I's host and HSM / start it again from its files
  dev partition [--dir DIR] --node I [--json]
                                         cut node I off from the others; dev heal [--dir DIR] undoes it
  dev token [--dir DIR] --user U [--ttl S]
                                         print a development bearer token for U
  fleet create --dir DIR --log-key VKEY --release-key HEX --witness-key WKEY... --witness-threshold T
        [--namespace NS] [--epoch E] [--nodes N] [--guess-limit G] [--max-successor-guess-limit M]
        [--platform P]
                                         provision a fleet's folder and run the genesis ceremony; the
                                         fleet counter-signs only bundles of namespace NS (default
                                         bkv-dev) and epoch E (default 1) signed by the log key VKEY;
                                         it freezes the release key HEX (raw Ed25519), the highest
                                         guess limit M of a successor (1 to G, default G) and the
                                         log's witnesses (cosignature/v1 keys WKEY, T must cosign)
  fleet create --hosts URL,... --admin-key FILE[,FILE...] [--ca FILE] --out DIR --log-key VKEY
        --release-key HEX --witness-key WKEY... --witness-threshold T [--max-successor-guess-limit M]
                                         the ceremony through each host's admin listener
  fleet evidence --dev DIR --out FILE    write the fleet's deployment evidence
  measure [--source DIR] [--out FILE] [--json]
                                         build the HSM core reproducibly and print its measurement
  audit --evidence FILE (--vendor-root KEYFILE [--allow-test-roots] | --aws-nitro-root | --trust FILE)
        [--measurement HEX | --source DIR] [--fleet ID] [--json]
                                         check a fleet's evidence; exit 0 only if every check holds
  monitor (--dev DIR | --log URL --log-key VKEY --witness-key VKEY... [--witness-threshold N])
          [--vendor-root FILE] [--state FILE] [--max-guess-limit N] [--follow [--interval S]] [--json]
                                         follow the transparency log, check every entry and its
                                         evidence, report each fleet; exit 0 only if every check holds
  release key --out FILE                 make a release key (Ed25519, mode 0600); prints its public key
  release publish --log URL --namespace NS --release-key FILE --submitter-key FILE --revision REV
          [--measurement HEX | --source DIR] [--recipe TEXT] [--epoch E] [--json]
                                         sign a release entry (measurement, revision, recipe) and
                                         append it to the log's releases namespace
  host --config FILE                     run one host agent and its HSM process
  host key --out FILE                    make this host's Ed25519 host key; prints its public key for peers
  host init --out FILE                   write a commented example config (docs/host-config.md)
  key new --out KEYFILE [--force]        make a new backup key (--force replaces an existing KEYFILE)
  backup --key KEYFILE [--force] IN OUT  encrypt IN into the backup file OUT (--force replaces OUT)
  restore --key KEYFILE [--force] IN OUT decrypt the backup file IN into OUT (--force replaces OUT)
  vault register|recover|delete          protect, recover or delete a backup key with a PIN
        (--dev DIR | --vault URL (--token-file FILE | --token TOKEN) --trust FILE) --user U
        [--key KEYFILE [--replace] | --out KEYFILE [--force]] [--checkpoint FILE] [--json]
                                         the bearer token: --token-file FILE, or the environment
                                         variable BKV_TOKEN (--token TOKEN is visible to other local
                                         users in the process list). register asks the PIN twice on a
                                         terminal; --replace replaces U's existing record (on a
                                         terminal register asks instead). recover --force replaces an
                                         existing KEYFILE
  bench [--only backup|vault|fleet|trust|records] [--seconds S] [--records N,N...]
                                         run the benchmarks and print measured figures;
                                         records: the record tree at each size (default
                                         1000,1000000)

exit codes:
${EXIT_CODES.map((e) => `  ${e.code}  ${e.meaning}`).join("\n")}`;

/**
 * The lines of USAGE about one command: each entry starts two spaces in with the command's name, and
 * its continuation lines are indented further.
 */
export function commandUsage(name: string): string {
  const out: string[] = [];
  let mine = false;
  for (const line of USAGE.split("\n").slice(1)) {
    if (/^ {2}\S/.test(line)) mine = line.slice(2).split(/[\s|]/)[0] === name;
    else if (!line.startsWith("   ")) mine = false;
    if (mine) out.push(line);
  }
  return `usage: bkv ${name} ...\n\n${out.join("\n")}\n\nexit codes: bkv --help`;
}

/** --help or -h among a command's arguments (before a "--" that ends the options). */
function asksHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

type Command = (argv: string[]) => Promise<number>;

/** Each command's module, imported when the command runs. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  dev: async () => (await import("./commands/dev.js")).devCommand,
  key: async () => (await import("./commands/backup.js")).keyCommand,
  backup: async () => (await import("./commands/backup.js")).backupCommand,
  restore: async () => (await import("./commands/backup.js")).restoreCommand,
  vault: async () => (await import("./commands/vault.js")).vaultCommand,
  bench: async () => (await import("./commands/bench.js")).benchCommand,
  host: async () => (await import("./commands/host.js")).hostCommand,
  fleet: async () => (await import("./commands/fleet.js")).fleetCommand,
  measure: async () => (await import("./commands/measure.js")).measureCommand,
  audit: async () => (await import("./commands/audit.js")).auditCommand,
  monitor: async () => (await import("./commands/monitor.js")).monitorCommand,
  release: async () => (await import("./commands/release.js")).releaseCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 1 : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    process.stderr.write(`bkv: unknown command '${name}'\n\n${USAGE}\n`);
    return 1;
  }
  if (asksHelp(rest)) {
    process.stdout.write(`${commandUsage(name)}\n`);
    return 0;
  }
  const cmd = await load();
  try {
    return await cmd(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bkv ${name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
