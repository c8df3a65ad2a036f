export { type HpkeSealer, type SealedRequest, sealRequest, webCryptoHpkeSealer } from "./channel.js";
export { unwrapBackupKey, wrapBackupKey } from "./key-wrap.js";
export {
  type HttpTransportOptions,
  httpTransport,
  type VaultReply,
  type VaultTransport,
} from "./transport.js";
export {
  AnswerBundleError,
  type KeyStretching,
  type RecoverResult,
  VaultClient,
  type VaultClientOptions,
} from "./vault-client.js";
