/**
 * The log's side of tlog-witness: submit a checkpoint with a consistency proof from the size the
 * witness last cosigned, follow a 409 to the size it reports, and keep only a cosignature that
 * verifies with the witness's configured key.
 */
import {
  type Checkpoint,
  formatAddCheckpointRequest,
  isTlogError,
  type MerkleTree,
  type NoteSignature,
  type NoteVerifier,
  openNote,
  parseAddCheckpointResponse,
  TlogError,
  TlogErrorCode,
} from "@bkv/tlog";

export interface WitnessConfig {
  /** Submission prefix, e.g. http://127.0.0.1:7001 (add-checkpoint is POSTed under it). */
  readonly url: string;
  readonly verifier: NoteVerifier;
}

export interface Cosignature {
  readonly signature: NoteSignature;
  /** The witness's size after cosigning: the checkpoint's. */
  readonly size: number;
}

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Ask one witness to cosign `note` (the log-signed checkpoint `checkpoint`). `knownSize` is the
 * size the log believes the witness has; a 409 corrects it (at most twice).
 */
export async function requestCosignature(
  witness: WitnessConfig,
  note: string,
  checkpoint: Checkpoint,
  tree: MerkleTree,
  knownSize: number,
): Promise<Cosignature> {
  let old = knownSize <= checkpoint.size ? knownSize : 0;
  const url = `${witness.url.replace(/\/+$/, "")}/add-checkpoint`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const proof = old === 0 || old === checkpoint.size ? [] : tree.consistencyProof(old, checkpoint.size);
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "text/plain; charset=utf-8" },
      body: formatAddCheckpointRequest({ oldSize: old, proof, checkpoint: note }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = await res.text();
    let lines: NoteSignature[];
    try {
      lines = parseAddCheckpointResponse(res.status, res.headers.get("content-type") ?? undefined, body);
    } catch (e) {
      if (isTlogError(e, TlogErrorCode.WitnessConflict) && e.size !== undefined && e.size !== old) {
        if (e.size > checkpoint.size) {
          throw new TlogError(
            TlogErrorCode.Inconsistent,
            `witness ${witness.verifier.name} has cosigned size ${e.size}, larger than this log's ${checkpoint.size}`,
          );
        }
        old = e.size;
        continue;
      }
      throw e;
    }
    const mine = lines.filter((s) => s.name === witness.verifier.name && s.keyId === witness.verifier.keyId);
    if (mine.length === 0) {
      throw new TlogError(
        TlogErrorCode.WitnessRefused,
        `witness ${witness.verifier.name} returned no cosignature of its key`,
      );
    }
    // Check it as a client will: the checkpoint text with the cosignature appended.
    const text = note.slice(0, note.lastIndexOf("\n\n") + 1);
    const opened = openNote(`${text}\n${body}`, [witness.verifier]);
    return { signature: opened.verified[0]!, size: checkpoint.size };
  }
  throw new TlogError(TlogErrorCode.WitnessRefused, `witness ${witness.verifier.name} kept answering 409`);
}
