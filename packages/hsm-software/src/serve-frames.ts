/**
 * The HSM process's I/O, shared by every platform's process: frames of the HSM API arrive on stdin
 * and leave on stdout (length-prefixed). The host is the adversary, so nothing it sends makes the
 * process exit or lose its state: a frame over the cap (MAX_FRAME_BYTES) is skipped as its bytes pass,
 * never buffered, and counted; an undecodable frame is counted by the core (`framesRejected` in
 * the Status frame). Only the host closing stdin ends the process.
 */
import type { HsmPlatform } from "@bkv/hsm-core";
import { FrameDecoder, frame } from "@bkv/wire";
import type { LoadedCore } from "./load-core.js";

export async function serveFrames(
  HsmCore: LoadedCore["HsmCore"],
  platform: HsmPlatform,
  onExit: () => void = () => {},
): Promise<void> {
  const exit = (code: number): never => {
    try {
      onExit();
    } finally {
      process.exit(code);
    }
  };
  const core = await HsmCore.create(platform, (bytes) => {
    process.stdout.write(frame(bytes));
  });
  const decoder = new FrameDecoder({ skipOversized: true });
  let refused = 0;
  process.stdin.on("data", (chunk: Buffer) => {
    const frames = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    for (; refused < decoder.refused; refused++) {
      core.frameRefused();
      process.stderr.write("hsm: refused a frame over the size cap from the host\n");
    }
    for (const f of frames) {
      core.receive(f).catch((e: unknown) => {
        process.stderr.write(`hsm: internal error: ${(e as Error).message}\n`);
      });
    }
  });
  process.stdin.on("end", () => exit(0));
  process.stdout.on("error", () => exit(0));
}
