/**
 * @bkv/client/node/backup: only the backup side of @bkv/client/node (backup keys and format, AES-GCM
 * on node:crypto, Node file and stream helpers), without the vault, HPKE, checkpoint and evidence
 * modules. `bkv key`, `bkv backup` and `bkv restore` import this, so a backup's process does not load
 * (and spend start-up time compiling) code it never runs.
 */
export * from "../backup/index.js";
export { nodeChunkCipher } from "./cipher.js";
export {
  decryptFile,
  type EncryptFileOptions,
  encryptFile,
  type FileOptions,
  type FileResult,
} from "./files.js";
export { createDecryptStream, createEncryptStream } from "./streams.js";
