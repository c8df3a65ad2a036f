/**
 * Client-side checks of what the log hands out: a cosigned checkpoint under a trust policy
 * (the pinned log key and witness keys with a threshold), and a validation bundle (artifact,
 * log signature, inclusion proof, cosigned checkpoint). Everything in a bundle is
 * attacker-controlled until these return.
 */

import { verifyBundleSignature } from "./bundle.js";
import { type Checkpoint, parseCheckpoint } from "./checkpoint.js";
import { toBase64 } from "./encoding.js";
import { TlogError, TlogErrorCode } from "./errors.js";
import { logEntryLeafHash } from "./log-entry.js";
import { verifyInclusion } from "./merkle.js";
import {
  type NoteVerifier,
  noteVerifier,
  type OpenedNote,
  openNote,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
} from "./note.js";

export interface TrustPolicy {
  /** The log's Ed25519 verifier key; its name is the log's origin. */
  readonly logKey: string;
  /** Witness cosignature/v1 verifier keys, each key once (under one name). */
  readonly witnessKeys: readonly string[];
  /** How many distinct witnesses must have cosigned. */
  readonly threshold: number;
}

export interface CosignedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: OpenedNote;
  /** Names of the witnesses whose cosignatures verified. */
  readonly cosigners: readonly string[];
}

function untrusted(message: string, cause?: unknown): TlogError {
  return new TlogError(TlogErrorCode.Unverified, message, cause === undefined ? undefined : { cause });
}

/**
 * Why a list of witness keys names one witness twice (the same public key under one name or two), or
 * undefined if it does not. A cosignature does not sign the witness's name, so a key listed under two
 * names would let one witness's cosignature, copied under the second name, count twice.
 */
export function repeatedWitnessKey(witnessKeys: readonly string[]): string | undefined {
  const seen = new Map<string, string>();
  for (const k of witnessKeys) {
    const v = parseVerifierKey(k);
    const id = toBase64(v.publicKey);
    const first = seen.get(id);
    if (first !== undefined)
      return `one witness key is listed twice (as ${first} and ${v.name}): it would count twice`;
    seen.set(id, v.name);
  }
  return undefined;
}

/** Verify a checkpoint note: signed by the log, for its origin, cosigned by >= threshold witnesses. */
export function openCosignedCheckpoint(note: string | Uint8Array, policy: TrustPolicy): CosignedCheckpoint {
  const log = noteVerifier(policy.logKey);
  if (log.type !== SIG_ED25519)
    throw new TlogError(TlogErrorCode.BadKey, "the log key must be an Ed25519 key");
  const witnesses: NoteVerifier[] = policy.witnessKeys.map((k) => {
    const v = noteVerifier(k);
    if (v.type !== SIG_COSIGNATURE_V1)
      throw new TlogError(TlogErrorCode.BadKey, `${k} is not a cosignature/v1 key`);
    return v;
  });
  const twice = repeatedWitnessKey(policy.witnessKeys);
  if (twice !== undefined) throw new TlogError(TlogErrorCode.BadKey, twice);
  const opened = openNote(note, [log, ...witnesses]);
  if (!opened.verified.some((s) => s.verifier === log))
    throw untrusted("the checkpoint is not signed by the log");
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== log.name) {
    throw untrusted(`the checkpoint is for ${JSON.stringify(checkpoint.origin)}, not the log ${log.name}`);
  }
  const cosigners = [...new Set(opened.verified.filter((s) => s.verifier !== log).map((s) => s.name))];
  if (cosigners.length < policy.threshold) {
    throw untrusted(`${cosigners.length} witness cosignatures, ${policy.threshold} required`);
  }
  return { checkpoint, note: opened, cosigners };
}

export interface LogBundle {
  readonly namespace: string;
  readonly epoch: number;
  readonly artifact: Uint8Array;
  readonly evidenceDigest: Uint8Array;
  readonly index: number;
  /** Ed25519 by the log key over bundleSignedMessage(namespace, epoch, SHA-256(artifact)). */
  readonly logSignature: Uint8Array;
  readonly inclusionProof: readonly Uint8Array[];
  /** The cosigned checkpoint note the proof is against. */
  readonly checkpoint: string;
}

/** Check a bundle end to end; returns the checkpoint it is included in. */
export function verifyLogBundle(bundle: LogBundle, policy: TrustPolicy): CosignedCheckpoint {
  const logKey = parseVerifierKey(policy.logKey);
  if (!verifyBundleSignature(logKey, bundle.namespace, bundle.epoch, bundle.artifact, bundle.logSignature)) {
    throw new TlogError(TlogErrorCode.BadSignature, "the log's signature over the artifact does not verify");
  }
  const cp = openCosignedCheckpoint(bundle.checkpoint, policy);
  const leaf = logEntryLeafHash(bundle);
  verifyInclusion(bundle.index, cp.checkpoint.size, leaf, bundle.inclusionProof, cp.checkpoint.root);
  return cp;
}
