/** `bkv bench [--only backup|vault|fleet|trust] [--seconds S]`: benchmarks that print measured figures (not tests). */
import { parse, UsageError } from "../args.js";
import { benchBackup } from "../bench/backup.js";
import { benchBundleVerify } from "../bench/bundle-verify.js";
import { benchFleets } from "../bench/fleet.js";
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
    // The one-HSM benchmark also measures the raw OPAQUE rate the fleet is compared with.
    const { raw } = await benchVault({ seconds: only === "fleet" ? 3 : seconds });
    if (only !== "vault") await benchFleets({ seconds, raw });
  }
  return 0;
}
