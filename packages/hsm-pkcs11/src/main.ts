/**
 * The PKCS#11 HSM process: `node main.js --dir HSM_DIR --core FILE`, with the same clean start
 * (empty environment, no Node flags), folder layout and stdin/stdout framing as the software HSM
 * (@bkv/hsm-software/main). Its keys and NVRAM live in a SoftHSM2 token in HSM_DIR, made and
 * attested by the provisioning tool (provision.ts). The PKCS#11 module is the one HSM_DIR/pkcs11-module
 * names, and it is loaded only if its SHA-256 is the one the HSM's attestation names (module-check.ts:
 * otherwise exit EXIT_MODULE_NOT_ATTESTED, before any of its code runs). The process sets
 * SOFTHSM2_CONF to HSM_DIR/softhsm2.conf itself, after the clean-start check, before it loads the
 * module. It holds the folder's lock while it runs (exit EXIT_FOLDER_IN_USE if another live process
 * holds it).
 */
import { parseArgs } from "node:util";
import { loadCore, refuseUncleanStart, serveFrames, startExitCode } from "@bkv/hsm-software";
import { EXIT_MODULE_NOT_ATTESTED, ModuleNotAttested } from "./module-check.js";
import { pkcs11Platform } from "./pkcs11-platform.js";
import { provisionedModule } from "./token.js";

async function run(): Promise<void> {
  refuseUncleanStart();
  const { values } = parseArgs({
    options: { dir: { type: "string" }, core: { type: "string" } },
    strict: true,
  });
  if (values.dir === undefined || values.core === undefined) {
    process.stderr.write("hsm: --dir and --core are required\n");
    process.exit(2);
  }
  const { HsmCore, measurement } = await loadCore(values.core);
  const platform = pkcs11Platform({ hsmDir: values.dir, measurement, module: provisionedModule(values.dir) });
  await serveFrames(HsmCore, platform, () => platform.close());
}

run().catch((e: unknown) => {
  process.stderr.write(`hsm: ${(e as Error).message}\n`);
  process.exit(e instanceof ModuleNotAttested ? EXIT_MODULE_NOT_ATTESTED : startExitCode(e));
});
