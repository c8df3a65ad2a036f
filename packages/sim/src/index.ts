export * from "./check/index.js";
export * from "./fleet.js";
export * from "./prng.js";
export { Safety, type SafetyOptions } from "./safety.js";
export { DEFAULT_SIM, type SimOptions, type SimResult, simulate } from "./simulate.js";
