export { inspectKeys, type KeyObjectInfo } from "./inspect.js";
export {
  type AttestedModule,
  attestedModuleHashes,
  EXIT_MODULE_NOT_ATTESTED,
  ModuleNotAttested,
  moduleHashOf,
  moduleProperty,
  openAttestedModule,
} from "./module-check.js";
export {
  AGREE_LABEL,
  NVRAM_LABEL,
  type Pkcs11Platform,
  type Pkcs11PlatformOptions,
  type Pkcs11ProvisionOptions,
  pkcs11Platform,
  provisionPkcs11Hsm,
  SEAL_LABEL,
  SIGN_LABEL,
} from "./pkcs11-platform.js";
export {
  confPath,
  DEFAULT_MODULE,
  modulePath,
  pinPath,
  provisionedModule,
  provisionToken,
  TOKEN_LABEL,
  tokenDir,
  writeProvisionedModule,
} from "./token.js";
