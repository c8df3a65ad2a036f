/**
 * The software HSM process: `node main.js --dir HSM_DIR --vendor-key FILE --core FILE`. It loads
 * the measured core (--core, built by `npm run build` or `bkv measure`), attests its identity with
 * the test vendor root (--vendor-key, development only), then passes frames of the HSM API between
 * the core and its host: in on stdin, out on stdout (length-prefixed). Nothing else is read or
 * written but the HSM's own folder.
 */
import { parseArgs } from "node:util";
import { loadCore } from "./load-core.js";
import { serveFrames } from "./serve-frames.js";
import { softwarePlatform } from "./software-platform.js";
import { readVendorRootKey } from "./vendor-root.js";

async function run(): Promise<void> {
  const { values } = parseArgs({
    options: { dir: { type: "string" }, "vendor-key": { type: "string" }, core: { type: "string" } },
    strict: true,
  });
  if (values.dir === undefined || values["vendor-key"] === undefined || values.core === undefined) {
    process.stderr.write("hsm: --dir, --vendor-key and --core are required\n");
    process.exit(2);
  }
  const { HsmCore, measurement } = await loadCore(values.core);
  const platform = softwarePlatform({
    dir: values.dir,
    vendor: readVendorRootKey(values["vendor-key"]),
    measurement,
  });
  await serveFrames(HsmCore, platform);
}

run().catch((e: unknown) => {
  process.stderr.write(`hsm: ${(e as Error).message}\n`);
  process.exit(1);
});
