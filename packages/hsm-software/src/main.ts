/**
 * The software HSM process: `node main.js --dir HSM_DIR`. Frames of the HSM API arrive on stdin and
 * leave on stdout (length-prefixed); nothing else is read or written but the HSM's own folder.
 */
import { parseArgs } from "node:util";
import { HsmCore } from "@bkv/hsm-core";
import { FrameDecoder, frame } from "@bkv/wire";
import { softwarePlatform } from "./software-platform.js";

async function run(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: "string" } }, strict: true });
  if (values.dir === undefined) {
    process.stderr.write("hsm: --dir is required\n");
    process.exit(2);
  }
  const platform = softwarePlatform({ dir: values.dir });
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
