/**
 * The PKCS#11 HSM process: `node main.js --dir HSM_DIR --vendor-key FILE --core FILE`, with the same
 * flags and stdin/stdout framing as the software HSM (@bkv/hsm-software/main). Its keys and NVRAM
 * live in a SoftHSM2 token in HSM_DIR, made on first start (token.ts). The process sets
 * SOFTHSM2_CONF to HSM_DIR/softhsm2.conf itself before it loads the module: one token per process.
 */
import { parseArgs } from "node:util";
import { loadCore, readVendorRootKey, serveFrames } from "@bkv/hsm-software";
import { pkcs11Platform } from "./pkcs11-platform.js";
import { provisionToken } from "./token.js";

async function run(): Promise<void> {
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
    process.stderr.write("hsm: --dir, --vendor-key and --core are required\n");
    process.exit(2);
  }
  const { HsmCore, measurement } = await loadCore(values.core);
  provisionToken(values.dir, values.module);
  const platform = pkcs11Platform({
    hsmDir: values.dir,
    vendor: readVendorRootKey(values["vendor-key"]),
    measurement,
    module: values.module,
  });
  await serveFrames(HsmCore, platform, () => platform.close());
}

run().catch((e: unknown) => {
  process.stderr.write(`hsm: ${(e as Error).message}\n`);
  process.exit(1);
});
