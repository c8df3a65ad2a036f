export { type CoreCounters, type CoreOptions, HsmCore } from "./core.js";
export * from "./genesis.js";
export * from "./nvram.js";
export { PeerChannel, peerKey } from "./peer-channel.js";
export type { HsmCrypto, HsmPlatform } from "./platform.js";
export * from "./policy.js";
export {
  type LogRecord,
  type Position,
  Raft,
  type RaftInit,
  type RaftOptions,
  type Ready,
  type Role,
  type SnapshotMeta,
} from "./raft.js";
export * from "./raft-entry.js";
export * from "./raft-messages.js";
export * from "./record-cache.js";
export * from "./record-codec.js";
export * from "./record-reader.js";
export * from "./record-tree.js";
export { type PendingLogin, type VaultRecord, VaultState } from "./state.js";
export { checkStorage, type StorageVerdict } from "./storage-check.js";
export * from "./successor.js";
