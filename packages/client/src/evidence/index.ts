export * from "./member-reuse.js";
export * from "./strict.js";
export * from "./verify-evidence.js";
