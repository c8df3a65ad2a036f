/**
 * `bkv bench [--only backup|vault|fleet|trust|records] [--seconds S] [--records N,N...]`: benchmarks
 * that print measured figures (not tests).
 */
import { parse, UsageError } from "../args.js";
import { benchBackup } from "../bench/backup.js";
import { benchBundleVerify } from "../bench/bundle-verify.js";
import { benchFleets } from "../bench/fleet.js";
import { rawCrypto } from "../bench/raw-crypto.js";
import { benchRecords } from "../bench/records.js";
import { benchVault } from "../bench/vault.js";

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    only: { type: "string" },
    "backup-bytes": { type: "string" },
    seconds: { type: "string" },
    records: { type: "string" },
  });
  const only = values.only;
  const parts = ["backup", "vault", "fleet", "trust", "records"];
  if (only !== undefined && !parts.includes(only)) throw new UsageError(`--only ${parts.join("|")}`);
  const sizes = (values.records ?? "1000,1000000").split(",").map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 100_000_000)) {
    throw new UsageError("--records: record counts 1..100000000, comma-separated");
  }
  const bytes = values["backup-bytes"] === undefined ? 1 << 30 : Number(values["backup-bytes"]);
  const seconds = values.seconds === undefined ? 10 : Number(values.seconds);
  if (!Number.isFinite(bytes) || bytes < 0 || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError("--backup-bytes and --seconds must be positive numbers");
  }
  if (only === undefined || only === "backup") await benchBackup({ bytes });
  if (only === undefined || only === "trust") await benchBundleVerify();
  if (only === undefined || only === "records") await benchRecords({ sizes });
  if (only !== "backup" && only !== "trust" && only !== "records") {
    // The one-HSM benchmark also measures the raw OPAQUE rate it is compared with.
    if (only !== "fleet") await benchVault({ seconds });
    // The fleet is compared with the raw crypto of a recovery, measured in the same run.
    if (only !== "vault") await benchFleets({ seconds, raw: await rawCrypto(3) });
  }
  return 0;
}
