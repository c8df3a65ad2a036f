/**
 * The validation bundle as it travels in vault responses (JSON; bytes in standard base64, as the
 * log serves them). Everything in it is checked by the client against its pins before use
 * (packages/client/src/bundle/).
 */
export interface BundleJson {
  namespace: string;
  epoch: number;
  /** The encoded FleetArtifact. */
  artifact: string;
  /** SHA-256 of the fleet's evidence (part of the log entry). */
  evidenceDigest: string;
  /** The entry's index in the log. */
  index: number;
  /** The log's Ed25519 signature over (namespace, epoch, SHA-256(artifact)). */
  logSignature: string;
  /** The fleet's Ed25519 signature over countersignMessage(namespace, epoch, SHA-256(artifact), logSignature). */
  countersignature: string;
  /**
   * The fleet's evidence (encoded FleetEvidence), whose SHA-256 is evidenceDigest. `GET /v1/bundle`
   * carries it so a client can verify a fleet it has not verified before; vault answers leave it out.
   */
  evidence?: string;
  /** Inclusion proof of the entry in the checkpoint. */
  inclusionProof: string[];
  /** The checkpoint: a C2SP signed note with the log's signature and witness cosignatures. */
  checkpoint: string;
  /** Consistency proof from the size the client said it has seen to the checkpoint's size. */
  consistency?: { from: number; proof: string[] };
  /**
   * The release entry of the fleet's measurement in a releases namespace of the same log, against
   * the same checkpoint (GET /v1/bundle carries it when the log has one; vault answers leave it
   * out). A client that pins a release key instead of the measurement accepts the fleet's code
   * only with it.
   */
  release?: ReleaseBundleJson;
}

/** A release entry as the log serves it (GET /release/<measurement hex>, GET /bundle?releases=NS). */
export interface ReleaseBundleJson {
  namespace: string;
  epoch: number;
  /** The encoded signed release entry (@bkv/tlog release.ts). */
  artifact: string;
  /** SHA-256 of the entry's (empty) evidence. */
  evidenceDigest: string;
  index: number;
  /** The log's Ed25519 signature over (namespace, epoch, SHA-256(artifact)). */
  logSignature: string;
  inclusionProof: string[];
  checkpoint: string;
}

/** Request header with the size of the largest checkpoint the client has seen. */
export const CHECKPOINT_SIZE_HEADER = "x-bkv-checkpoint-size";
