export { type CoreCounters, type CoreOptions, HsmCore } from "./core.js";
export * from "./log-entry.js";
export * from "./nvram.js";
export type { HsmCrypto, HsmPlatform } from "./platform.js";
export * from "./policy.js";
export { VaultState } from "./state.js";
