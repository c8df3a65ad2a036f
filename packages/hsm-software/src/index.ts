export {
  type MemoryHsm,
  type MemoryPlatformOptions,
  memoryPlatform,
  newMemoryHsm,
} from "./memory-platform.js";
export * from "./node-crypto.js";
export { type SoftwarePlatformOptions, softwarePlatform } from "./software-platform.js";
