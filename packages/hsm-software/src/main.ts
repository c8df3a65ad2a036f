/**
 * The software HSM process: `node main.js --dir HSM_DIR --core FILE`, with an empty environment and
 * no Node flags (clean-start.ts: it refuses anything else). It loads the measured core (--core,
 * built by `npm run build` or `bkv measure`), checks that its folder holds an attestation of its
 * keys and that measurement by a vendor root it trusts (both written by the provisioning tool,
 * provision.ts: this process never holds a vendor root's private key), then passes frames of the
 * HSM API between the core and its host: in on stdin, out on stdout (length-prefixed). Nothing else
 * is read or written but the HSM's own folder. It holds the folder's lock (folder-lock.ts) while it
 * runs, and exits EXIT_FOLDER_IN_USE if another live process holds it.
 */
import { parseArgs } from "node:util";
import { refuseUncleanStart } from "./clean-start.js";
import { loadCore } from "./load-core.js";
import { startExitCode } from "./provisioned.js";
import { serveFrames } from "./serve-frames.js";
import { softwarePlatform } from "./software-platform.js";

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
  const platform = softwarePlatform({ dir: values.dir, measurement });
  await serveFrames(HsmCore, platform);
}

run().catch((e: unknown) => {
  process.stderr.write(`hsm: ${(e as Error).message}\n`);
  process.exit(startExitCode(e));
});
