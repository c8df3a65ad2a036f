/**
 * The HSM process's I/O, shared by every platform's process: frames of the HSM API arrive on stdin
 * and leave on stdout (length-prefixed). Bad framing from the host ends the process; so does the
 * host closing stdin.
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
  const decoder = new FrameDecoder();
  process.stdin.on("data", (chunk: Buffer) => {
    let frames: Uint8Array[] = [];
    try {
      frames = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch (e) {
      process.stderr.write(`hsm: bad framing from host, exiting: ${(e as Error).message}\n`);
      exit(1);
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
