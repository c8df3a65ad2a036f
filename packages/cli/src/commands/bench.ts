/** `bkv bench [--only backup|vault|fleet|trust] [--seconds S]`: benchmarks that print measured figures (not tests). */
import { parse, UsageError } from "../args.js";
import { benchBackup } from "../bench/backup.js";
import { benchBundleVerify } from "../bench/bundle-verify.js";
import { benchFleets } from "../bench/fleet.js";
import { rawCrypto } from "../bench/raw-crypto.js";
import { benchVault } from "../bench/vault.js";

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    only: { type: "string" },
    "backup-bytes": { type: "string" },
    seconds: { type: "string" },
  });
  const only = values.only;
  if (only !== undefined && only !== "backup" && only !== "vault" && only !== "fleet" && only !== "trust") {
    throw new UsageError("--only backup|vault|fleet|trust");
  }
  const bytes = values["backup-bytes"] === undefined ? 1 << 30 : Number(values["backup-bytes"]);
  const seconds = values.seconds === undefined ? 10 : Number(values.seconds);
  if (!Number.isFinite(bytes) || bytes < 0 || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError("--backup-bytes and --seconds must be positive numbers");
  }
  if (only === undefined || only === "backup") await benchBackup({ bytes });
  if (only === undefined || only === "trust") await benchBundleVerify();
  if (only !== "backup" && only !== "trust") {
    // The one-HSM benchmark also measures the raw OPAQUE rate it is compared with.
    if (only !== "fleet") await benchVault({ seconds });
    // The fleet is compared with the raw crypto of a recovery, measured in the same run.
    if (only !== "vault") await benchFleets({ seconds, raw: await rawCrypto(3) });
  }
  return 0;
}
