/**
 * Checking histories of concurrent operations: a generic linearizability checker, the sequential
 * model of a vault record, and an independent guess-limit check.
 */
export { precedes } from "./events.js";
export { checkGuessLimitHistory } from "./guess-limit.js";
export { checkLinearizable } from "./linearizability.js";
export type { CheckOptions, CheckResult, Model, Operation } from "./types.js";
export {
  formatVaultOutput,
  type VaultInput,
  type VaultOutput,
  type VaultState,
  vaultApply,
  vaultModel,
} from "./vault-model.js";
