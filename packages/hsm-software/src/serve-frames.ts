/**
 * The HSM process's I/O, shared by every platform's process: frames of the HSM API arrive on stdin
 * and leave on stdout (length-prefixed). The host is the adversary, so nothing it sends makes the
 * process exit or lose its state: a frame over the cap (MAX_FRAME_BYTES) is skipped as its bytes pass,
 * never buffered, and counted; an undecodable frame is counted by the core (`framesRejected` in
 * the Status frame). Only the host closing stdin ends the process. Frames the core emits while it
 * handles what arrived leave together, in order, in one write at the end of that turn of the event
 * loop (FrameBatch): the core awaits every NVRAM write before it emits a frame that depends on it,
 * so batching only delays output, never lets a frame overtake what it depends on.
 */
import type { HsmPlatform } from "@bkv/hsm-core";
import { FrameBatch, FrameDecoder } from "@bkv/wire";
import type { LoadedCore } from "./load-core.js";

export async function serveFrames(
  HsmCore: LoadedCore["HsmCore"],
  platform: HsmPlatform,
  onExit: () => void = () => {},
): Promise<void> {
  const out = new FrameBatch(
    (bytes) => process.stdout.write(bytes),
    (flush) => setImmediate(flush),
  );
  const exit = (code: number): never => {
    try {
      // What the core emitted in this turn still leaves (a closed stdout only makes this throw).
      try {
        out.flush();
      } catch {
        // nobody is reading
      }
      onExit();
    } finally {
      process.exit(code);
    }
  };
  const core = await HsmCore.create(platform, (bytes) => out.push(bytes));
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
