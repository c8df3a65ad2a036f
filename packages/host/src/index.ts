export { buildApi, openApiDocument } from "./api.js";
export { type TokenIssuerConfig, TokenVerifier } from "./auth.js";
export { DEFAULT_RATE_LIMITS, type HostConfig, loadHostConfig } from "./config.js";
export { type RunningHost, startHost } from "./host.js";
export { HsmLink, type HsmReply, type HsmState } from "./hsm-link.js";
export { type BucketConfig, RateLimiter } from "./rate-limit.js";
export { HostStorage } from "./storage.js";
