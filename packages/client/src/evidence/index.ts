export * from "./strict.js";
export * from "./verify-evidence.js";
