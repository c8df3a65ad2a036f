/**
 * C2SP tlog-witness `add-checkpoint`: the request body, the witness's decision, and the
 * response as the log reads it.
 *
 *     POST <witness>/add-checkpoint
 *     old <size>\n
 *     <base64 consistency proof hash>\n   (0..63 lines)
 *     \n
 *     <signed checkpoint note>
 *
 * Answers: 200 with cosignature lines; 409 (Content-Type text/x.tlog.size, body "<size>\n") when
 * the old size is not the witness's latest cosigned size; 400 malformed request or old size
 * greater than the checkpoint's; 403 no valid signature by a trusted key for the origin (or a bad
 * one); 404 unknown origin; 422 a consistency proof that does not verify (or a non-empty one
 * from size 0, equal sizes with different roots, a size-0 checkpoint without the empty root).
 */
import { bytesEqual } from "@bkv/wire";
import { type Checkpoint, parseCheckpoint } from "./checkpoint.js";
import { fromBase64, parseDecimal, toBase64 } from "./encoding.js";
import { isTlogError, TlogError, TlogErrorCode } from "./errors.js";
import { emptyRoot, HASH_SIZE, verifyConsistency } from "./merkle.js";
import {
  type NoteSignature,
  type NoteVerifier,
  type OpenedNote,
  openNote,
  parseNote,
  parseSignatureLines,
} from "./note.js";

export const TLOG_SIZE_CONTENT_TYPE = "text/x.tlog.size";
/** A client MUST NOT send more consistency proof lines than this. */
export const MAX_WITNESS_PROOF_LINES = 63;

/** What each add-checkpoint status means, for messages. */
export const ADD_CHECKPOINT_STATUS: Readonly<Record<number, string>> = {
  200: "cosigned",
  400: "malformed request, or old size larger than the checkpoint's",
  403: "no valid signature from a key the witness trusts for this origin",
  404: "the witness does not know this log's origin",
  409: "old size differs from the witness's latest cosigned size",
  422: "the checkpoint is not consistent with what the witness cosigned before",
  503: "the witness cannot trust its own state (WITNESS_STATE: its database was lost or restored) and fails closed",
};

export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint note, signature lines included. */
  readonly checkpoint: string;
}

function bad(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadWitnessMessage, message);
}

export function formatAddCheckpointRequest(r: AddCheckpointRequest): string {
  if (!Number.isSafeInteger(r.oldSize) || r.oldSize < 0) throw bad(`bad old size ${r.oldSize}`);
  if (r.proof.length > MAX_WITNESS_PROOF_LINES) throw bad("more than 63 consistency proof lines");
  for (const p of r.proof) if (p.length !== HASH_SIZE) throw bad("a proof hash is 32 bytes");
  return `old ${r.oldSize}\n${r.proof.map((p) => toBase64(p) + "\n").join("")}\n${r.checkpoint}`;
}

export function parseAddCheckpointRequest(body: string): AddCheckpointRequest {
  const end = body.indexOf("\n\n");
  if (end < 0) throw bad("add-checkpoint: no empty line before the checkpoint");
  const lines = body.slice(0, end).split("\n");
  const checkpoint = body.slice(end + 2);
  const first = lines.shift()!;
  if (!first.startsWith("old ")) throw bad('add-checkpoint: the first line must be "old <size>"');
  const oldSize = parseDecimal(first.slice(4));
  if (oldSize === undefined)
    throw bad("add-checkpoint: the old size is not a decimal without leading zeroes");
  if (lines.length > MAX_WITNESS_PROOF_LINES)
    throw bad("add-checkpoint: more than 63 consistency proof lines");
  const proof = lines.map((l) => {
    const h = fromBase64(l);
    if (h === undefined || h.length !== HASH_SIZE)
      throw bad("add-checkpoint: a proof line is not base64 of 32 bytes");
    return h;
  });
  return { oldSize, proof, checkpoint };
}

/** The 409 body: the witness's latest cosigned size. */
export function formatSizeBody(size: number): string {
  return `${size}\n`;
}

export function parseSizeBody(body: string): number {
  const n = body.endsWith("\n") ? parseDecimal(body.slice(0, -1)) : undefined;
  if (n === undefined)
    throw bad(`a size body must be a decimal and a newline, got ${JSON.stringify(body.slice(0, 40))}`);
  return n;
}

/**
 * Read a witness's answer to add-checkpoint. 200: its signature lines (at least one; the caller
 * verifies them with the witness key). 409: throws TLOG_WITNESS_CONFLICT with `size`. Anything
 * else: TLOG_WITNESS_REFUSED with `status`.
 */
export function parseAddCheckpointResponse(
  status: number,
  contentType: string | undefined,
  body: string,
): NoteSignature[] {
  if (status === 200) {
    try {
      return parseSignatureLines(body);
    } catch (e) {
      throw new TlogError(
        TlogErrorCode.BadWitnessMessage,
        "the witness's 200 answer is not signature lines",
        {
          cause: e,
        },
      );
    }
  }
  if (status === 409) {
    const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== TLOG_SIZE_CONTENT_TYPE)
      throw bad(`a 409 answer must be ${TLOG_SIZE_CONTENT_TYPE}, got ${contentType}`);
    const size = parseSizeBody(body);
    throw new TlogError(TlogErrorCode.WitnessConflict, `the witness's latest cosigned size is ${size}`, {
      size,
    });
  }
  const meaning = ADD_CHECKPOINT_STATUS[status] ?? "unexpected status";
  throw new TlogError(TlogErrorCode.WitnessRefused, `witness answered ${status}: ${meaning}`, { status });
}

/** What a witness remembers per log: its latest cosigned tree. */
export interface WitnessRecord {
  readonly size: number;
  readonly root: Uint8Array;
}

export type AddCheckpointDecision =
  | {
      readonly status: 200;
      readonly checkpoint: Checkpoint;
      /** The checkpoint note, verified with the log's key(s). */
      readonly note: OpenedNote;
    }
  | { readonly status: 400 | 403 | 404 | 422; readonly reason: string }
  | { readonly status: 409; readonly size: number; readonly reason: string };

/**
 * The witness's checks, in the order the spec gives them. `trusted` gives the verifiers for an
 * origin (undefined: unknown log), `latest` the record of its latest cosigned checkpoint. On 200
 * the caller cosigns and records the checkpoint atomically with this check.
 */
export function checkAddCheckpoint(
  body: string,
  trusted: (origin: string) => readonly NoteVerifier[] | undefined,
  latest: (origin: string) => WitnessRecord | undefined,
): AddCheckpointDecision {
  let req: AddCheckpointRequest;
  let checkpoint: Checkpoint;
  try {
    req = parseAddCheckpointRequest(body);
    checkpoint = parseCheckpoint(parseNote(req.checkpoint).text);
  } catch (e) {
    return { status: 400, reason: e instanceof Error ? e.message : "malformed request" };
  }
  const verifiers = trusted(checkpoint.origin);
  if (verifiers === undefined) return { status: 404, reason: `unknown log ${checkpoint.origin}` };
  let note: OpenedNote;
  try {
    note = openNote(req.checkpoint, verifiers);
  } catch (e) {
    if (isTlogError(e)) return { status: 403, reason: e.message };
    throw e;
  }
  if (req.oldSize > checkpoint.size) {
    return {
      status: 400,
      reason: `old size ${req.oldSize} is larger than the checkpoint size ${checkpoint.size}`,
    };
  }
  const record = latest(checkpoint.origin) ?? { size: 0, root: emptyRoot() };
  if (req.oldSize !== record.size) {
    return { status: 409, size: record.size, reason: `the latest cosigned size is ${record.size}` };
  }
  if (checkpoint.size === 0 && !bytesEqual(checkpoint.root, emptyRoot())) {
    return { status: 422, reason: "a checkpoint of size 0 must have the empty tree's root" };
  }
  if (req.oldSize === 0) {
    if (req.proof.length !== 0) return { status: 422, reason: "a proof from size 0 must be empty" };
  } else if (req.oldSize === checkpoint.size) {
    if (!bytesEqual(record.root, checkpoint.root)) {
      return {
        status: 422,
        reason: "same size as the cosigned checkpoint but a different root (split view)",
      };
    }
    if (req.proof.length !== 0) return { status: 422, reason: "equal sizes need an empty proof" };
  } else {
    try {
      verifyConsistency(req.oldSize, checkpoint.size, record.root, checkpoint.root, req.proof);
    } catch (e) {
      return { status: 422, reason: e instanceof Error ? e.message : "bad consistency proof" };
    }
  }
  return { status: 200, checkpoint, note };
}
