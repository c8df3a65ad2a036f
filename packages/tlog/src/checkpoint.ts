/**
 * C2SP tlog-checkpoint: parsing and formatting live in @bkv/wire (tlog-checkpoint.ts); this adds
 * opening a signed checkpoint note.
 */
import { type Checkpoint, formatCheckpoint, parseCheckpoint, TlogError, TlogErrorCode } from "@bkv/wire";
import { type NoteVerifier, type OpenedNote, openNote } from "./note.js";

export { type Checkpoint, formatCheckpoint, parseCheckpoint };

function bad(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadCheckpoint, `malformed checkpoint: ${message}`);
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: OpenedNote;
}

/**
 * Verify a signed checkpoint note against the verifiers and parse its text. If `origin` is
 * given, the checkpoint must be for it.
 */
export function openCheckpoint(
  msg: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
  origin?: string,
): OpenedCheckpoint {
  const note = openNote(msg, verifiers);
  const checkpoint = parseCheckpoint(note.text);
  if (origin !== undefined && checkpoint.origin !== origin) {
    throw bad(`the origin is ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(origin)}`);
  }
  return { checkpoint, note };
}
