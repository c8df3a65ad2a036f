/**
 * Typed errors of the transparency-log library (@bkv/tlog re-exports them; they live here so the
 * HSM core, which imports only this package, checks logs with the same code). Every failure is a TlogError whose `code` is one
 * of TlogErrorCode: callers branch on the code, people read the message.
 */

export const TlogErrorCode = {
  /** A Merkle inclusion or consistency proof is malformed or does not verify. */
  BadProof: "TLOG_BAD_PROOF",
  /** Two views of the log cannot both be true: a split view, a rollback, a mismatched root. */
  Inconsistent: "TLOG_INCONSISTENT",
  /** Text that is not a well-formed signed note (or signature line). */
  BadNote: "TLOG_BAD_NOTE",
  /** A signature by a known key fails to verify. */
  BadSignature: "TLOG_BAD_SIGNATURE",
  /** No signature by a known key is present. */
  Unverified: "TLOG_UNVERIFIED",
  /** Two configured verifiers share a key name and key ID. */
  AmbiguousKey: "TLOG_AMBIGUOUS_KEY",
  /** A verifier or signer key string that does not decode, or an unsupported signature type. */
  BadKey: "TLOG_BAD_KEY",
  /** Note text that is not a well-formed checkpoint. */
  BadCheckpoint: "TLOG_BAD_CHECKPOINT",
  /** A tile path or tile contents that are malformed, or an entries tile that does not decode. */
  BadTile: "TLOG_BAD_TILE",
  /** A log entry that does not decode. */
  BadEntry: "TLOG_BAD_ENTRY",
  /** An index, size or range outside what the tree (or the format) allows. */
  Range: "TLOG_RANGE",
  /** A tlog-witness request or response body that is malformed. */
  BadWitnessMessage: "TLOG_BAD_WITNESS_MESSAGE",
  /** The witness answered 409: its latest cosigned size differs; `size` holds it. */
  WitnessConflict: "TLOG_WITNESS_CONFLICT",
  /** The witness refused the checkpoint (400, 403, 404, 422) or failed. */
  WitnessRefused: "TLOG_WITNESS_REFUSED",
  /** A resource could not be fetched. */
  Unavailable: "TLOG_UNAVAILABLE",
} as const;

export type TlogErrorCode = (typeof TlogErrorCode)[keyof typeof TlogErrorCode];

export class TlogError extends Error {
  readonly code: TlogErrorCode;
  /** On WitnessConflict: the tree size the witness reported. On WitnessRefused: the HTTP status. */
  readonly size: number | undefined;
  readonly status: number | undefined;

  constructor(
    code: TlogErrorCode,
    message: string,
    options?: { cause?: unknown; size?: number; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TlogError";
    this.code = code;
    this.size = options?.size;
    this.status = options?.status;
  }
}

export function isTlogError(e: unknown, code?: TlogErrorCode): e is TlogError {
  return e instanceof TlogError && (code === undefined || e.code === code);
}

/** Throw a TlogError with this code unless cond holds. */
export function ensure(cond: boolean, code: TlogErrorCode, message: string): asserts cond {
  if (!cond) throw new TlogError(code, message);
}
