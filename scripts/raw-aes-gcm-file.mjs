// The yardstick for `bkv backup` as a whole process (timed side by side, e.g. /usr/bin/time -v): one raw AES-256-GCM pass of
// node:crypto over IN, written to OUT, streamed in 1 MiB reads. No format, no framing, no checks.
// --sync: then fsync OUT, as `bkv backup` does before it names its output (durability, not speed).
// usage: node scripts/raw-aes-gcm-file.mjs [--sync] IN OUT
import { createCipheriv, randomBytes } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync } from "node:fs";
import { pipeline } from "node:stream/promises";

const args = process.argv.slice(2);
const sync = args[0] === "--sync";
const [input, output] = sync ? args.slice(1) : args;
const cipher = createCipheriv("aes-256-gcm", randomBytes(32), randomBytes(12));
await pipeline(createReadStream(input, { highWaterMark: 1 << 20 }), cipher, createWriteStream(output));
if (sync) {
  const fd = openSync(output, "r+");
  fsyncSync(fd);
  closeSync(fd);
}
