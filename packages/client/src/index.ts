/**
 * @bkv/client: the client SDK. Runs in browsers and Node (no Node-only API here; Node adapters are in
 * @bkv/client/node). Backup keys and backup files (backup/), and the vault protocol (vault/).
 */

export { BkvError, ErrorCode, isBkvError } from "@bkv/wire";
export * from "./backup/index.js";
export * from "./vault/index.js";
