export * from "./nitro-platform.js";
export * from "./nsm-api.js";
export * from "./test-double-nsm.js";
export * from "./test-double-pki.js";
