/**
 * The software HSM's provisioning tool (the "factory"), run once per HSM and again whenever the HSM
 * has new keys (its NVRAM was empty) or is to run another core:
 *
 *   node provision.js --dir HSM_DIR --vendor-key FILE --core FILE
 *
 * It makes the HSM's identity keys if it has none alive, has the vendor root (--vendor-key, kept
 * outside the HSM's folder) attest them with the measurement of --core, and writes the attestation
 * and the attesting root into the HSM's folder. That root is the only one the HSM trusts in other
 * members' attestations: only a root that verifies the HSM's own attestation counts (provisioned.ts),
 * so there is no option to add others. The HSM process itself never sees the vendor root's private
 * key. It refuses while another live process (a running HSM) holds the folder. Development only.
 */
import { parseArgs } from "node:util";
import { measureCoreFile } from "./load-core.js";
import { provisionSoftwareHsm } from "./software-platform.js";
import { readVendorRootKey } from "./vendor-root.js";

function run(): void {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      "vendor-key": { type: "string" },
      core: { type: "string" },
    },
    strict: true,
  });
  if (values.dir === undefined || values["vendor-key"] === undefined || values.core === undefined) {
    process.stderr.write("provision: --dir, --vendor-key and --core are required\n");
    process.exit(2);
  }
  const vendor = readVendorRootKey(values["vendor-key"]);
  const r = provisionSoftwareHsm({
    dir: values.dir,
    vendor,
    measurement: measureCoreFile(values.core),
  });
  process.stdout.write(`provisioned ${values.dir}${r.renewed ? " (new identity keys)" : ""}\n`);
}

try {
  run();
} catch (e) {
  process.stderr.write(`provision: ${(e as Error).message}\n`);
  process.exit(1);
}
