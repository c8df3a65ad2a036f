export * from "./bytes.js";
export * from "./codec.js";
export * from "./errors.js";
export * from "./framing.js";
export * from "./hsm-api.js";
export * from "./opaque-sizes.js";
export * from "./vault-protocol.js";
