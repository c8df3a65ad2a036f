/**
 * @bkv/client/node: the Node side of the client SDK — AES-GCM on node:crypto, Node stream and file
 * helpers for backups — and, for Node callers' convenience, the browser-safe backup API as well.
 */
export * from "./backup.js";
export { defaultCheckpointPath, fileCheckpointStore, fileVerifiedCache } from "./checkpoint-file.js";
export { nodeHpkeSealer } from "./hpke-sealer.js";
