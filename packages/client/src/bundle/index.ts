export * from "./pins.js";
export * from "./verify-bundle.js";
