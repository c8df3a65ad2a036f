/**
 * @bkv/client: the client SDK. Runs in browsers and Node (no Node-only API here; Node adapters are in
 * @bkv/client/node). Backup keys and backup files (backup/), the vault protocol (vault/), and the
 * audit of a fleet's deployment evidence (audit/).
 */

export { BkvError, ErrorCode, isBkvError } from "@bkv/wire";
export * from "./audit/index.js";
export * from "./backup/index.js";
export * from "./bundle/index.js";
export * from "./evidence/index.js";
export * from "./nitro/index.js";
export * from "./passkey/index.js";
export * from "./vault/index.js";
