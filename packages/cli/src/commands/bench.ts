/** `bkv bench`: benchmarks that print measured figures (not tests). */
import { parse, UsageError } from "../args.js";
import { benchBackup } from "../bench/backup.js";
import { benchVault } from "../bench/vault.js";

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    only: { type: "string" },
    "backup-bytes": { type: "string" },
    seconds: { type: "string" },
  });
  const only = values.only;
  if (only !== undefined && only !== "backup" && only !== "vault")
    throw new UsageError("--only backup|vault");
  const bytes = values["backup-bytes"] === undefined ? 1 << 30 : Number(values["backup-bytes"]);
  const seconds = values.seconds === undefined ? 10 : Number(values.seconds);
  if (only !== "vault") await benchBackup({ bytes });
  if (only !== "backup") await benchVault({ seconds });
  return 0;
}
