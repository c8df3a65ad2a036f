/**
 * @bkv/client/node: the Node side of the client SDK — AES-GCM on node:crypto, Node stream and file
 * helpers for backups — and, for Node callers' convenience, the browser-safe backup API as well.
 */
export * from "../backup/index.js";
export { defaultCheckpointPath, fileCheckpointStore, fileVerifiedCache } from "./checkpoint-file.js";
export { nodeChunkCipher } from "./cipher.js";
export {
  decryptFile,
  type EncryptFileOptions,
  encryptFile,
  type FileOptions,
  type FileResult,
} from "./files.js";
export { nodeHpkeSealer } from "./hpke-sealer.js";
export { createDecryptStream, createEncryptStream } from "./streams.js";
