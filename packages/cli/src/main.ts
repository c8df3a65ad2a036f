/**
 * bkv: the command-line entry point. Each command returns its exit code; these codes are a contract
 * (see README): 0 success, 1 anything else, 3 wrong PIN, 4 no record, 5 vault unavailable.
 */

import { UsageError } from "./args.js";
import { auditCommand } from "./commands/audit.js";
import { backupCommand, keyCommand, restoreCommand } from "./commands/backup.js";
import { benchCommand } from "./commands/bench.js";
import { devCommand } from "./commands/dev.js";
import { fleetCommand } from "./commands/fleet.js";
import { hostCommand } from "./commands/host.js";
import { measureCommand } from "./commands/measure.js";
import { monitorCommand } from "./commands/monitor.js";
import { releaseCommand } from "./commands/release.js";
import { vaultCommand } from "./commands/vault.js";

const USAGE = `usage: bkv <command> [options]

  dev [--dir DIR] [--port PORT] [--nodes N] [--latency MS] [--guess-limit G] [--platform software|pkcs11]
      [--namespace NS]                   (a new folder's fleet is frozen to NS, default bkv-dev, epoch 1)
                                         run a local fleet (default 5 nodes; ready line: JSON on stdout)
  dev status --dir DIR [--json]          each node's role, term, commit index, leader, process ids
  dev kill|start --dir DIR --node I      SIGKILL node I's host and HSM / start it again from its files
  dev partition --dir DIR --node I       cut node I off from the others; dev heal --dir DIR undoes it
  dev token --dir DIR --user U           print a development bearer token for U
  fleet create --dir DIR --log-key VKEY [--namespace NS] [--epoch E] [--nodes N] [--guess-limit G] [--platform P]
                                         provision a fleet's folder and run the genesis ceremony; the
                                         fleet counter-signs only bundles of namespace NS (default
                                         bkv-dev) and epoch E (default 1) signed by the log key VKEY
  fleet evidence --dev DIR --out FILE    write the fleet's deployment evidence
  measure [--source DIR] [--out FILE]    build the HSM core reproducibly and print its measurement
  audit --evidence FILE (--vendor-root KEYFILE | --aws-nitro-root | --trust FILE) [--measurement HEX | --source DIR] [--fleet ID] [--json]
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
  key new --out KEYFILE                  make a new backup key
  backup --key KEYFILE IN OUT            encrypt IN into the backup file OUT
  restore --key KEYFILE IN OUT           decrypt the backup file IN into OUT
  vault register|recover|delete          protect, recover or delete a backup key with a PIN
        (--dev DIR | --vault URL --token TOKEN --trust FILE) --user U [--key KEYFILE | --out KEYFILE] [--json]
  bench [--only backup|vault|fleet|trust] run the benchmarks and print measured figures

exit codes: 0 ok, 1 error, 3 wrong PIN, 4 no record, 5 vault unavailable`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  dev: devCommand,
  key: keyCommand,
  backup: backupCommand,
  restore: restoreCommand,
  vault: vaultCommand,
  bench: benchCommand,
  host: hostCommand,
  fleet: fleetCommand,
  measure: measureCommand,
  audit: auditCommand,
  monitor: monitorCommand,
  release: releaseCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 1 : 0;
  }
  const cmd = COMMANDS[name];
  if (cmd === undefined) {
    process.stderr.write(`bkv: unknown command '${name}'\n\n${USAGE}\n`);
    return 1;
  }
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
