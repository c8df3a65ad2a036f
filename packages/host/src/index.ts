export { adminKeyDigest, buildAdminApi } from "./admin-api.js";
export { buildApi } from "./api.js";
export { type TokenIssuerConfig, TokenVerifier } from "./auth.js";
export { BundleKeeper, MAX_KNOWN_SIZES, MAX_OTHER_PROOFS, type TransparencyConfig } from "./bundle-keeper.js";
export {
  type CeremonyLogStep,
  type CeremonyMember,
  type CeremonyResult,
  createFleet,
  type FleetCreated,
  type FleetParameters,
  type GenesisMember,
  runCeremony,
} from "./ceremony.js";
export {
  type AdminConfig,
  checkHostConfig,
  DEFAULT_RATE_LIMITS,
  type HostConfig,
  type HostConfigFile,
  type HsmConfig,
  loadHostConfig,
  readHostConfigFile,
  stripJsonComments,
  type TlsFiles,
} from "./config.js";
export { type RunningHost, startHost } from "./host.js";
export { type HostKey, hostPublicKey, readHostKey, writeNewHostKey } from "./host-key.js";
export { allowedHostNames, hostHeaderName } from "./host-names.js";
export { HsmLink, type HsmReply, type HsmState } from "./hsm-link.js";
export { HsmProcess } from "./hsm-process.js";
export { bind, portHolder, portInUse } from "./listen-check.js";
export {
  HostMetrics,
  instrumentRequests,
  type MetricsSources,
  registerMetrics,
  registerProbes,
} from "./metrics.js";
export { FrameMac, Initiator, Responder } from "./peer-handshake.js";
export {
  type Faults,
  FaultsFile,
  MAX_PENDING_HANDSHAKES,
  type PeerAddress,
  type PeerConfig,
  PeerListener,
  PeerTransport,
} from "./peers.js";
export { type BucketConfig, RateLimiter } from "./rate-limit.js";
export { RecordStore, type RecordWrite } from "./record-store.js";
export { HostStorage } from "./storage.js";
