/**
 * The software HSM process: `node main.js --dir HSM_DIR --vendor-key FILE --core FILE`. It loads
 * the measured core (--core, built by `npm run build` or `bkv measure`), attests its identity with
 * the test vendor root (--vendor-key, development only), then passes frames of the HSM API between
 * the core and its host: in on stdin, out on stdout (length-prefixed). Nothing else is read or
 * written but the HSM's own folder.
 */
import { parseArgs } from "node:util";
import { FrameDecoder, frame } from "@bkv/wire";
import { loadCore } from "./load-core.js";
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
  const core = await HsmCore.create(platform, (bytes) => {
    process.stdout.write(frame(bytes));
  });
  const decoder = new FrameDecoder();
  process.stdin.on("data", (chunk: Buffer) => {
    let frames: Uint8Array[];
    try {
      frames = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch (e) {
      process.stderr.write(`hsm: bad framing from host, exiting: ${(e as Error).message}\n`);
      process.exit(1);
    }
    for (const f of frames) {
      core.receive(f).catch((e: unknown) => {
        process.stderr.write(`hsm: internal error: ${(e as Error).message}\n`);
      });
    }
  });
  process.stdin.on("end", () => process.exit(0));
  process.stdout.on("error", () => process.exit(0));
}

run().catch((e: unknown) => {
  process.stderr.write(`hsm: ${(e as Error).message}\n`);
  process.exit(1);
});
