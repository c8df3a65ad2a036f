export * from "./evidence-check.js";
export * from "./http-errors.js";
export * from "./log-server.js";
export * from "./log-store.js";
export * from "./node-keys.js";
export * from "./witness-client.js";
export * from "./witness-server.js";
export * from "./witness-state.js";
