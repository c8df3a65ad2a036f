export * from "./clean-start.js";
export * from "./folder-lock.js";
export { type LoadedCore, loadCore, measureCoreFile } from "./load-core.js";
export {
  type MemoryHsm,
  type MemoryPlatformOptions,
  memoryPlatform,
  newMemoryHsm,
  TEST_MEASUREMENT,
  TEST_VENDOR,
} from "./memory-platform.js";
export * from "./node-crypto.js";
export * from "./provisioned.js";
export { serveFrames } from "./serve-frames.js";
export * from "./soft-identity.js";
export {
  type ProvisionOptions,
  provisionSoftwareHsm,
  type SoftwarePlatformOptions,
  softwarePlatform,
} from "./software-platform.js";
export * from "./vendor-root.js";
