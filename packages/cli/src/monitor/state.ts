/**
 * The monitor's memory of the log: the last checkpoint it verified completely (every check of
 * every entry held), kept in a JSON file. A later checkpoint must extend it: a smaller tree is a
 * rollback, the same size with another root a split view, a larger tree must come with a
 * consistency proof (computed here from the tiles of the new tree) that verifies against the
 * saved root.
 *
 *     {"version": 1, "origin": "...", "size": N, "root": "<base64>", "note": "<signed checkpoint>"}
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import {
  type Checkpoint,
  fromBase64,
  noteVerifier,
  openCheckpoint,
  type TiledLog,
  TlogError,
  TlogErrorCode,
  toBase64,
  verifyConsistency,
} from "@bkv/tlog";
import { BkvError, bytesEqual, ErrorCode, toHex } from "@bkv/wire";

export interface SavedCheckpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  /** The signed checkpoint note, as the log served it. */
  readonly note: string;
}

/** Read the state file; undefined if it does not exist yet. The note must be signed by the log key. */
export function loadState(path: string, logKey: string): SavedCheckpoint | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new BkvError(ErrorCode.Invalid, `cannot read the state file ${path}: ${(e as Error).message}`);
  }
  const bad = (what: string, cause?: unknown) =>
    new BkvError(
      ErrorCode.Malformed,
      `the state file ${path}: ${what}`,
      cause === undefined ? {} : { cause },
    );
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw bad("not JSON", e);
  }
  if (typeof o !== "object" || o === null || o.version !== 1) throw bad("not a version 1 monitor state");
  if (typeof o.note !== "string") throw bad("no checkpoint note");
  let cp: Checkpoint;
  try {
    cp = openCheckpoint(o.note, [noteVerifier(logKey)]).checkpoint;
  } catch (e) {
    throw new BkvError(
      ErrorCode.Untrusted,
      `the state file ${path} holds a checkpoint not signed by this log's key: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const root = typeof o.root === "string" ? fromBase64(o.root) : undefined;
  if (o.origin !== cp.origin || o.size !== cp.size || root === undefined || !bytesEqual(root, cp.root))
    throw bad("origin, size and root do not match its checkpoint note");
  return { origin: cp.origin, size: cp.size, root: cp.root, note: o.note };
}

/** Write the state file atomically (a temporary file renamed over it). */
export function saveState(path: string, s: SavedCheckpoint): void {
  const body = JSON.stringify({
    version: 1,
    origin: s.origin,
    size: s.size,
    root: toBase64(s.root),
    note: s.note,
  });
  const tmp = `${path}.${toHex(new Uint8Array(randomBytes(4)))}.tmp`;
  try {
    writeFileSync(tmp, `${body}\n`, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BkvError(
      ErrorCode.Unavailable,
      `cannot write the state file ${path}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/** How a new checkpoint relates to the one remembered. */
export type Consistency =
  | { readonly kind: "first" }
  | { readonly kind: "same"; readonly size: number }
  | { readonly kind: "extends"; readonly from: number };

/**
 * Demand that the tree `tiles` (of a verified checkpoint) extends `saved`. Throws
 * TlogError(Inconsistent) on a rollback or a split view, TlogError(BadProof) if the consistency
 * proof from the tiles does not verify.
 */
export async function checkConsistency(
  saved: { size: number; root: Uint8Array } | undefined,
  tiles: TiledLog,
): Promise<Consistency> {
  if (saved === undefined || saved.size === 0) return { kind: "first" };
  if (tiles.size < saved.size) {
    throw new TlogError(
      TlogErrorCode.Inconsistent,
      `rollback: the log's checkpoint has ${tiles.size} entries, fewer than the ${saved.size} of the checkpoint seen before`,
    );
  }
  if (tiles.size === saved.size) {
    if (!bytesEqual(tiles.rootHash, saved.root)) {
      throw new TlogError(
        TlogErrorCode.Inconsistent,
        `split view: the log's checkpoint of size ${tiles.size} has root ${toHex(tiles.rootHash)}, the one seen before ${toHex(saved.root)}`,
      );
    }
    return { kind: "same", size: saved.size };
  }
  const proof = await tiles.consistencyProof(saved.size);
  try {
    verifyConsistency(saved.size, tiles.size, saved.root, tiles.rootHash, proof);
  } catch (e) {
    throw new TlogError(
      TlogErrorCode.Inconsistent,
      `split view: no valid proof that the log's tree of size ${tiles.size} extends the tree of size ${saved.size} seen before (${(e as Error).message})`,
      { cause: e },
    );
  }
  return { kind: "extends", from: saved.size };
}
