/** @bkv/web: the browser demo's web server (the page itself is in static/). */
export { loadWebConfig, parseWebConfig, type WebConfig } from "./config.js";
export { type DevTokens, devTokens, TOKEN_TTL_SECONDS } from "./dev-tokens.js";
export {
  FileStorage,
  MAX_FILE_BYTES,
  NAME_PATTERN,
  type StoredFile,
  TooLarge,
  validName,
} from "./storage.js";
export { WebError, WebErrorCode } from "./web-errors.js";
export {
  contentSecurityPolicy,
  defaultSdkFile,
  defaultStaticDir,
  startWebServer,
  type WebServer,
  type WebServerOptions,
} from "./web-server.js";
