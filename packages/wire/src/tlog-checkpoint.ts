/**
 * C2SP tlog-checkpoint: the note text of a log's signed tree head.
 *
 *     <origin>\n<decimal size>\n<base64 root hash>\n[<extension line>\n...]
 *
 * Parsing is strict: at least three lines, all non-empty, no leading zeroes in the size, a
 * canonical base64 32-byte root, the final newline present. Signatures are the note's business
 * (signed-note.ts); @bkv/tlog's openCheckpoint does both. It lives here so the
 * HSM core reads checkpoints with the same parser as clients.
 */
import { fromBase64, isSize, parseDecimal, toBase64 } from "./tlog-encoding.js";
import { TlogError, TlogErrorCode } from "./tlog-errors.js";
import { HASH_SIZE } from "./tlog-merkle.js";

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  /** Opaque extension lines, without their newlines. */
  readonly extensions: readonly string[];
}

function bad(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadCheckpoint, `malformed checkpoint: ${message}`);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters
const CONTROL = /[\u0000-\u001f]/;

export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw bad("the text must end in a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw bad("fewer than three lines");
  for (const l of lines) {
    if (l.length === 0) throw bad("empty line");
    if (CONTROL.test(l)) throw bad("control character");
  }
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  const size = parseDecimal(sizeLine);
  if (size === undefined)
    throw bad(`the tree size ${JSON.stringify(sizeLine)} is not a decimal without leading zeroes`);
  const root = fromBase64(rootLine);
  if (root === undefined || root.length !== HASH_SIZE) throw bad("the root hash is not base64 of 32 bytes");
  return { origin, size, root, extensions };
}

export function formatCheckpoint(c: Checkpoint): string {
  if (c.origin.length === 0 || c.origin.includes("\n") || CONTROL.test(c.origin)) throw bad("bad origin");
  if (!isSize(c.size)) throw bad(`bad tree size ${c.size}`);
  if (c.root.length !== HASH_SIZE) throw bad("the root hash must be 32 bytes");
  for (const e of c.extensions) {
    if (e.length === 0 || CONTROL.test(e)) throw bad("extension lines must be non-empty, one line each");
  }
  return [c.origin, String(c.size), toBase64(c.root), ...c.extensions].map((l) => l + "\n").join("");
}
