/**
 * What the token says about its keys: for every private-key and secret-key object, the attributes
 * that decide whether its secret can leave the token, read back through C_GetAttributeValue.
 */

import { resolve } from "node:path";
import {
  activeToken,
  attrs,
  bool,
  DEFAULT_MODULE,
  find,
  type OpenToken,
  openToken,
  pkcs11js,
  ulong,
} from "./token.js";

export interface KeyObjectInfo {
  label: string;
  /** "CKO_PRIVATE_KEY" or "CKO_SECRET_KEY". */
  class: string;
  /** "CKK_EC_EDWARDS", "CKK_EC", "CKK_AES", … or the number in hex. */
  keyType: string;
  sensitive: boolean;
  extractable: boolean;
  neverExtractable: boolean;
  alwaysSensitive: boolean;
}

const KEY_TYPES: Record<number, string> = {
  [pkcs11js.CKK_RSA]: "CKK_RSA",
  [pkcs11js.CKK_EC]: "CKK_EC",
  [pkcs11js.CKK_AES]: "CKK_AES",
  [pkcs11js.CKK_GENERIC_SECRET]: "CKK_GENERIC_SECRET",
  64: "CKK_EC_EDWARDS",
  65: "CKK_EC_MONTGOMERY",
};

function inspectOpen(t: OpenToken): KeyObjectInfo[] {
  const out: KeyObjectInfo[] = [];
  for (const [cls, name] of [
    [pkcs11js.CKO_PRIVATE_KEY, "CKO_PRIVATE_KEY"],
    [pkcs11js.CKO_SECRET_KEY, "CKO_SECRET_KEY"],
  ] as const) {
    for (const h of find(t, [{ type: pkcs11js.CKA_CLASS, value: cls }])) {
      const [label, keyType, sensitive, extractable, neverExtractable, alwaysSensitive] = attrs(t, h, [
        pkcs11js.CKA_LABEL,
        pkcs11js.CKA_KEY_TYPE,
        pkcs11js.CKA_SENSITIVE,
        pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_NEVER_EXTRACTABLE,
        pkcs11js.CKA_ALWAYS_SENSITIVE,
      ]);
      const kt = ulong(keyType);
      out.push({
        label: label!.toString("utf8"),
        class: name,
        keyType: KEY_TYPES[kt] ?? `0x${kt.toString(16)}`,
        sensitive: bool(sensitive),
        extractable: bool(extractable),
        neverExtractable: bool(neverExtractable),
        alwaysSensitive: bool(alwaysSensitive),
      });
    }
  }
  return out.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

/**
 * Every private and secret key in HSM_DIR's token. Uses the token's open session if this process
 * has it open (a platform running here); otherwise opens and closes it.
 */
export function inspectKeys(hsmDir: string, module: string = DEFAULT_MODULE): KeyObjectInfo[] {
  const active = activeToken();
  if (active !== null && active.hsmDir === resolve(hsmDir)) return inspectOpen(active);
  const t = openToken(hsmDir, module);
  try {
    return inspectOpen(t);
  } finally {
    t.close();
  }
}
