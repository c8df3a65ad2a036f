/**
 * What a client pins: the log's key, the witnesses' keys with a threshold, and the namespace of its
 * deployment. Nothing else: the fleet's keys arrive over the air in validation bundles.
 */
import { BkvError, ErrorCode } from "@bkv/wire";

export interface TrustPins {
  /** The log's note verifier key, C2SP `name+hash+base64` form; its name is the log's origin. */
  logKey: string;
  /** Witnesses' cosignature/v1 verifier keys. */
  witnessKeys: string[];
  /** How many distinct witnesses must cosign a checkpoint. */
  witnessThreshold: number;
  /** The deployment's namespace in the log. */
  namespace: string;
}

/** The largest checkpoint a client has seen and verified. */
export interface SeenCheckpoint {
  size: number;
  /** Root hash, standard base64. */
  root: string;
}

/** Where a client keeps the largest checkpoint it has seen (a file in the CLI, storage in a browser). */
export interface CheckpointStore {
  load(): Promise<SeenCheckpoint | null>;
  save(checkpoint: SeenCheckpoint): Promise<void>;
}

/** A store that forgets when the process ends (tests, one-shot tools). */
export function memoryCheckpointStore(initial: SeenCheckpoint | null = null): CheckpointStore {
  let cp = initial;
  return {
    async load() {
      return cp;
    },
    async save(c) {
      cp = c;
    },
  };
}

/** Check pins read from a file or another untrusted place before use. */
export function parseTrustPins(v: unknown): TrustPins {
  const o = v as Partial<TrustPins>;
  const ok =
    typeof o === "object" &&
    o !== null &&
    typeof o.logKey === "string" &&
    Array.isArray(o.witnessKeys) &&
    o.witnessKeys.every((k) => typeof k === "string") &&
    typeof o.witnessThreshold === "number" &&
    Number.isInteger(o.witnessThreshold) &&
    o.witnessThreshold >= 1 &&
    o.witnessThreshold <= o.witnessKeys.length &&
    typeof o.namespace === "string" &&
    o.namespace.length > 0;
  if (!ok) {
    throw new BkvError(
      ErrorCode.Invalid,
      "trust pins need logKey, witnessKeys, witnessThreshold (1 to the number of witnesses) and namespace",
    );
  }
  return {
    logKey: o.logKey!,
    witnessKeys: [...o.witnessKeys!],
    witnessThreshold: o.witnessThreshold!,
    namespace: o.namespace!,
  };
}
