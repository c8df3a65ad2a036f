export * from "./fleet.js";
export * from "./prng.js";
