export { inspectKeys, type KeyObjectInfo } from "./inspect.js";
export {
  AGREE_LABEL,
  NVRAM_LABEL,
  type Pkcs11Platform,
  type Pkcs11PlatformOptions,
  pkcs11Platform,
  SEAL_LABEL,
  SIGN_LABEL,
} from "./pkcs11-platform.js";
export { confPath, DEFAULT_MODULE, pinPath, provisionToken, TOKEN_LABEL, tokenDir } from "./token.js";
