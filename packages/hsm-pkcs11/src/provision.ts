/**
 * The PKCS#11 HSM's provisioning tool, run once per HSM and again whenever the HSM has new keys
 * (its NVRAM was empty) or is to run another core:
 *
 *   node provision.js --dir HSM_DIR --vendor-key FILE --core FILE [--module SO]
 *
 * It makes the HSM's SoftHSM2 token if it has none (token.ts), the keys inside it if none are alive,
 * has the vendor root (--vendor-key, kept outside the HSM's folder; SoftHSM2 has no vendor
 * attestation of its own) attest them with the measurement of --core and the SHA-256 of the module,
 * and writes the attestation, the attesting root (the only root the HSM trusts: only a root that
 * verifies the HSM's own attestation counts) and the PKCS#11 module path into the HSM's folder. The
 * HSM process loads the module only if its hash is the attested one (module-check.ts). It refuses
 * while another live process (a running HSM) holds the folder. Development only.
 */
import { parseArgs } from "node:util";
import { measureCoreFile, readVendorRootKey } from "@bkv/hsm-software";
import { provisionPkcs11Hsm } from "./pkcs11-platform.js";
import { DEFAULT_MODULE } from "./token.js";

function run(): void {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      "vendor-key": { type: "string" },
      core: { type: "string" },
      module: { type: "string" },
    },
    strict: true,
  });
  if (values.dir === undefined || values["vendor-key"] === undefined || values.core === undefined) {
    process.stderr.write("provision: --dir, --vendor-key and --core are required\n");
    process.exit(2);
  }
  const module = values.module ?? DEFAULT_MODULE;
  const vendor = readVendorRootKey(values["vendor-key"]);
  const r = provisionPkcs11Hsm({
    hsmDir: values.dir,
    vendor,
    measurement: measureCoreFile(values.core),
    module,
  });
  process.stdout.write(`provisioned ${values.dir}${r.renewed ? " (new identity keys)" : ""}\n`);
}

try {
  run();
} catch (e) {
  process.stderr.write(`provision: ${(e as Error).message}\n`);
  process.exit(1);
}
