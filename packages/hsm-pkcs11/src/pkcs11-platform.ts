/**
 * The PKCS#11 HSM platform: the identity keys, the seal key and the NVRAM live in the HSM's token
 * (SoftHSM2 in development and CI, token.ts). The keys are made inside the token on first start,
 * as token objects that are private, sensitive and never extractable, and found by label afterwards:
 *
 *   bkv-identity-sign    Ed25519 key pair (CKM_EC_EDWARDS_KEY_PAIR_GEN), signs with CKM_EDDSA
 *   bkv-identity-agree   P-256 key pair (CKM_EC_KEY_PAIR_GEN), CKM_ECDH1_DERIVE
 *   bkv-seal             AES-256 master seal key (CKM_AES_KEY_GEN), used only to derive: the seal key of
 *                        a core is CKM_AES_CBC_ENCRYPT_DATA of SHA-256(domain, measurement) under it, a
 *                        session key inside the token (sealKeyFor); seal/unseal with CKM_AES_GCM
 *   bkv-nvram            CKO_DATA token objects holding the NVRAM (see nvramWrite)
 *
 * Keys and NVRAM live and die together. The five key objects share one random CKA_ID, the HSM's
 * *life*, and every NVRAM value names that life. When the platform opens a token that has no valid
 * NVRAM value of its keys' life (a new token, the NVRAM objects destroyed, or keys and NVRAM that
 * do not belong together), it destroys every key and NVRAM object of ours and makes new keys under
 * a new life: an HSM with no NVRAM has no past, so nothing sealed or signed under its old identity
 * opens or counts again. With new keys it writes a *life record*: an NVRAM value of the new life
 * that holds no core data (magic "BKVK"), so the keys survive a restart before the core has written
 * NVRAM (provisioning attests them before the HSM first runs). It is an NVRAM value like the core's:
 * the core's first nvramWrite replaces it, and destroying NVRAM destroys it; there is no marker
 * object beside NVRAM that the host could make again. Keys whose core NVRAM is still empty have
 * signed and sealed nothing for a fleet (the core records its ceremony in NVRAM first). The life
 * record is made last: a crash before it leaves no NVRAM of the new life, and the next open starts
 * a new life again.
 *
 * The HSM process only reads its attestation and vendor roots from its folder, and trusts only the
 * roots that verify its own attestation (@bkv/hsm-software provisioned.ts). It holds the folder's
 * lock (HSM_DIR/hsm.lock, @bkv/hsm-software folder-lock.ts) from open to close, and so does
 * provisioning: a second process on the same token is refused.
 *
 * The core's own software cryptography (HPKE, AES-GCM under keys the core holds, HKDF, SHA-256,
 * the fleet's Ed25519 key) is node:crypto, as on the software platform.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { HsmPlatform } from "@bkv/hsm-core";
import {
  attest,
  lockHsmFolder,
  nodeHsmCrypto,
  readOwnAttestation,
  type VendorRoot,
  writeProvisioned,
} from "@bkv/hsm-software";
import { type AttestationBody, BkvError, bytesEqual, ErrorCode, utf8 } from "@bkv/wire";
import type { AesCBC, ECDH1 } from "pkcs11js";
import { moduleHashOf, moduleProperty, openAttestedModule } from "./module-check.js";
import {
  attrs,
  bool,
  buf,
  CKK_EC_EDWARDS,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  CKM_EDDSA,
  DEFAULT_MODULE,
  derOctetString,
  describe,
  ED25519_PARAMS,
  find,
  type Handle,
  type OpenToken,
  openToken,
  P256_PARAMS,
  pkcs11js,
  provisionToken,
  syncTokenFiles,
  trimPadded,
  writeProvisionedModule,
} from "./token.js";

export const SIGN_LABEL = "bkv-identity-sign";
export const AGREE_LABEL = "bkv-identity-agree";
export const SEAL_LABEL = "bkv-seal";
export const NVRAM_LABEL = "bkv-nvram";
/** The marker object of older versions; destroyed with a life, never read. */
const LEGACY_UNUSED_LABEL = "bkv-unused";

export interface Pkcs11PlatformOptions {
  /** The HSM's folder, with its token and attestation provisioned (provisionPkcs11Hsm). */
  hsmDir: string;
  /** SHA-256 of the core code this HSM process loaded. */
  measurement: Uint8Array;
  now?: () => number;
  /** The PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so). */
  module?: string;
  /** How long to wait for another live process to let go of the folder (folder-lock.ts). */
  lockWaitMs?: number;
}

export interface Pkcs11Platform extends HsmPlatform {
  /** Logs out, closes the session and finalizes the module. The platform is unusable after. */
  close(): void;
}

const {
  CKA_CLASS,
  CKA_KEY_TYPE,
  CKA_TOKEN,
  CKA_PRIVATE,
  CKA_SENSITIVE,
  CKA_EXTRACTABLE,
  CKA_NEVER_EXTRACTABLE,
  CKA_LABEL,
  CKA_ID,
  CKA_VALUE,
  CKA_VALUE_LEN,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_SIGN,
  CKA_VERIFY,
  CKA_DERIVE,
  CKA_ENCRYPT,
  CKA_DECRYPT,
  CKA_MODIFIABLE,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
  CKO_SECRET_KEY,
  CKO_DATA,
  CKK_EC,
  CKK_AES,
  CKK_GENERIC_SECRET,
} = pkcs11js;

const ecdh = (peer: Uint8Array): ECDH1 => ({
  type: pkcs11js.CK_PARAMS_EC_DH,
  kdf: pkcs11js.CKD_NULL,
  publicData: Buffer.from(peer),
});

type Template = { type: number; value?: number | boolean | string | Buffer }[];

/** What every key object gets: a private token object whose secret never leaves the token. */
const KEPT_INSIDE: Template = [
  { type: CKA_TOKEN, value: true },
  { type: CKA_PRIVATE, value: true },
  { type: CKA_SENSITIVE, value: true },
  { type: CKA_EXTRACTABLE, value: false },
];

function one(t: OpenToken, template: Template, what: string): Handle | null {
  const found = find(t, template);
  if (found.length > 1) throw new Error(`the token holds ${found.length} objects for ${what}`);
  return found[0] ?? null;
}

/** An existing key pair by label, or a new one made inside the token. Returns the handles. */
function keyPair(
  t: OpenToken,
  label: string,
  keyType: number,
  mechanism: number,
  publicTemplate: Template,
  privateTemplate: Template,
  id: Buffer,
): { privateKey: Handle; publicKey: Handle } {
  const privateKey = one(
    t,
    [
      { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
      { type: CKA_LABEL, value: label },
    ],
    label,
  );
  const publicKey = one(
    t,
    [
      { type: CKA_CLASS, value: CKO_PUBLIC_KEY },
      { type: CKA_LABEL, value: label },
    ],
    label,
  );
  if (privateKey !== null && publicKey !== null) return { privateKey, publicKey };
  if (privateKey !== null || publicKey !== null) {
    throw new Error(`the token holds half of the key pair ${label}; refusing to make a new identity over it`);
  }
  return t.p11.C_GenerateKeyPair(
    t.session,
    { mechanism },
    [
      { type: CKA_TOKEN, value: true },
      { type: CKA_PRIVATE, value: false },
      { type: CKA_KEY_TYPE, value: keyType },
      { type: CKA_LABEL, value: label },
      { type: CKA_ID, value: id },
      ...publicTemplate,
    ],
    [
      ...KEPT_INSIDE,
      { type: CKA_KEY_TYPE, value: keyType },
      { type: CKA_LABEL, value: label },
      { type: CKA_ID, value: id },
      ...privateTemplate,
    ],
  );
}

function sealKey(t: OpenToken, id: Buffer): Handle {
  const found = one(
    t,
    [
      { type: CKA_CLASS, value: CKO_SECRET_KEY },
      { type: CKA_LABEL, value: SEAL_LABEL },
    ],
    SEAL_LABEL,
  );
  if (found !== null) return found;
  return t.p11.C_GenerateKey(t.session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    ...KEPT_INSIDE,
    { type: CKA_CLASS, value: CKO_SECRET_KEY },
    { type: CKA_KEY_TYPE, value: CKK_AES },
    { type: CKA_VALUE_LEN, value: 32 },
    { type: CKA_LABEL, value: SEAL_LABEL },
    { type: CKA_ID, value: id },
    { type: CKA_DERIVE, value: true },
    { type: CKA_ENCRYPT, value: false },
    { type: CKA_DECRYPT, value: false },
  ]);
}

const SEAL_DOMAIN = utf8("bkv/seal-key/v1");

/**
 * The seal key of one core: derived inside the token from the master seal key and the measurement
 * (CKM_AES_CBC_ENCRYPT_DATA, zero IV, of SHA-256(domain || measurement): two AES blocks under the
 * master key), a session object that is sensitive and never extractable. Other code (another
 * measurement) gets another key, so it cannot open what this core sealed.
 */
function sealKeyFor(t: OpenToken, master: Handle, measurement: Uint8Array): Handle {
  if (measurement.length !== 32) throw new Error("a measurement is 32 bytes");
  const parameter: AesCBC = {
    type: pkcs11js.CK_PARAMS_AES_CBC,
    iv: Buffer.alloc(16),
    data: sha256(Buffer.concat([SEAL_DOMAIN, measurement])),
  };
  return t.p11.C_DeriveKey(t.session, { mechanism: pkcs11js.CKM_AES_CBC_ENCRYPT_DATA, parameter }, master, [
    { type: CKA_CLASS, value: CKO_SECRET_KEY },
    { type: CKA_KEY_TYPE, value: CKK_AES },
    { type: CKA_TOKEN, value: false },
    { type: CKA_SENSITIVE, value: true },
    { type: CKA_EXTRACTABLE, value: false },
    { type: CKA_VALUE_LEN, value: 32 },
    { type: CKA_ENCRYPT, value: true },
    { type: CKA_DECRYPT, value: true },
  ]);
}

/** The storage properties of a key object, read back from the token. */
function keyProperties(t: OpenToken, label: string, key: Handle): string {
  const [sensitive, extractable, neverExtractable] = attrs(t, key, [
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_NEVER_EXTRACTABLE,
  ]);
  return `${label}: CKA_SENSITIVE=${bool(sensitive)} CKA_EXTRACTABLE=${bool(extractable)} CKA_NEVER_EXTRACTABLE=${bool(neverExtractable)}`;
}

// An NVRAM object's value: magic, sequence number (u64 big-endian), the life of the keys it belongs
// to (their shared CKA_ID), SHA-256 of the data, the data. Magic "BKVL": the core's NVRAM; "BKVK":
// the life record (no data), written with new keys and replaced by the core's first write.
const NVRAM_MAGIC = Buffer.from("BKVL");
const LIFE_MAGIC = Buffer.from("BKVK");
export const LIFE_BYTES = 16;
const NVRAM_HEADER = NVRAM_MAGIC.length + 8 + LIFE_BYTES + 32;

function sha256(b: Uint8Array): Buffer {
  return createHash("sha256").update(b).digest();
}

/** The value of an NVRAM object (exported for tests that forge or damage one). */
export function encodeNvramValue(
  seq: bigint,
  life: Buffer,
  data: Uint8Array,
  kind: NvramKind = "core",
): Buffer {
  if (life.length !== LIFE_BYTES) throw new Error(`a life id is ${LIFE_BYTES} bytes`);
  if (kind === "life" && data.length !== 0) throw new Error("a life record holds no data");
  const value = Buffer.alloc(NVRAM_HEADER + data.length);
  (kind === "core" ? NVRAM_MAGIC : LIFE_MAGIC).copy(value, 0);
  value.writeBigUInt64BE(seq, 4);
  life.copy(value, 12);
  sha256(data).copy(value, 12 + LIFE_BYTES);
  value.set(data, NVRAM_HEADER);
  return value;
}

export type NvramKind = "core" | "life";

/** null for a value that is not one of ours or is damaged (a write torn by a crash). */
function decodeNvramValue(v: Buffer): { kind: NvramKind; seq: bigint; life: Buffer; data: Buffer } | null {
  if (v.length < NVRAM_HEADER) return null;
  const magic = v.subarray(0, 4);
  const kind: NvramKind | null = magic.equals(NVRAM_MAGIC)
    ? "core"
    : magic.equals(LIFE_MAGIC)
      ? "life"
      : null;
  if (kind === null) return null;
  const data = v.subarray(NVRAM_HEADER);
  if (kind === "life" && data.length !== 0) return null;
  if (!sha256(data).equals(v.subarray(12 + LIFE_BYTES, NVRAM_HEADER))) return null;
  return { kind, seq: v.readBigUInt64BE(4), life: v.subarray(12, 12 + LIFE_BYTES), data };
}

const KEY_LABELS = [SIGN_LABEL, AGREE_LABEL, SEAL_LABEL];

/** Two key pairs (private and public objects) and the seal key. */
const KEY_OBJECTS = 5;

/**
 * The life of the token's keys: the CKA_ID all five key objects share, or null unless exactly those
 * five exist with one id of the right length.
 */
export function keysLife(t: OpenToken): Buffer | null {
  const ids: Buffer[] = [];
  for (const label of KEY_LABELS) {
    for (const h of find(t, [{ type: CKA_LABEL, value: label }])) ids.push(attrs(t, h, [CKA_ID])[0]!);
  }
  const first = ids[0];
  if (ids.length !== KEY_OBJECTS || first === undefined || first.length !== LIFE_BYTES) return null;
  return ids.every((id) => id.equals(first)) ? Buffer.from(first) : null;
}

/** Every NVRAM object: its handle and its decoded value (null if damaged). */
function nvramObjectsOf(t: OpenToken): { handle: Handle; value: ReturnType<typeof decodeNvramValue> }[] {
  return find(t, [
    { type: CKA_CLASS, value: CKO_DATA },
    { type: CKA_LABEL, value: NVRAM_LABEL },
  ]).map((handle) => ({ handle, value: decodeNvramValue(attrs(t, handle, [CKA_VALUE])[0]!) }));
}

/** Whether the token holds NVRAM of these keys: a valid value (core data or life record) that names their life. */
function hasNvramOf(t: OpenToken, life: Buffer | null): boolean {
  return life !== null && nvramObjectsOf(t).some((o) => o.value?.life.equals(life) === true);
}

/** End this HSM's life: destroy every key and NVRAM object of ours, flushed to disk. */
function destroyLife(t: OpenToken): void {
  for (const label of [...KEY_LABELS, NVRAM_LABEL, LEGACY_UNUSED_LABEL]) {
    for (const h of find(t, [{ type: CKA_LABEL, value: label }])) t.p11.C_DestroyObject(t.session, h);
  }
  syncTokenFiles(t.hsmDir);
}

/** The token's keys of this life (made if it has no NVRAM of them). */
interface Life {
  id: Buffer;
  sign: { privateKey: Handle; publicKey: Handle };
  agree: { privateKey: Handle; publicKey: Handle };
  seal: Handle;
  signKey: Uint8Array;
  agreeKey: Uint8Array;
  /** New keys were made by this open. */
  renewed: boolean;
}

/** An NVRAM object holding this value. */
function nvramTemplate(value: Buffer): Template {
  return [
    { type: CKA_CLASS, value: CKO_DATA },
    { type: CKA_TOKEN, value: true },
    { type: CKA_PRIVATE, value: true },
    { type: CKA_MODIFIABLE, value: true },
    { type: CKA_LABEL, value: NVRAM_LABEL },
    { type: CKA_VALUE, value },
  ];
}

function openLife(t: OpenToken): Life {
  const { p11 } = t;
  // No NVRAM of these keys (not even their life record): a new life, with new keys (see the top of
  // this file). The life record is made last: a crash before it means a new life next time.
  let life = keysLife(t);
  const fresh = !hasNvramOf(t, life);
  if (fresh) {
    destroyLife(t);
    life = p11.C_GenerateRandom(t.session, Buffer.alloc(LIFE_BYTES));
  }
  const id = life!;
  const sign = keyPair(
    t,
    SIGN_LABEL,
    CKK_EC_EDWARDS,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    [
      { type: CKA_EC_PARAMS, value: ED25519_PARAMS },
      { type: CKA_VERIFY, value: true },
    ],
    [{ type: CKA_SIGN, value: true }],
    id,
  );
  const agree = keyPair(
    t,
    AGREE_LABEL,
    CKK_EC,
    pkcs11js.CKM_EC_KEY_PAIR_GEN,
    [{ type: CKA_EC_PARAMS, value: P256_PARAMS }],
    [{ type: CKA_DERIVE, value: true }],
    id,
  );
  const seal = sealKey(t, id);
  if (fresh) {
    p11.C_CreateObject(t.session, nvramTemplate(encodeNvramValue(0n, id, new Uint8Array(0), "life")));
    syncTokenFiles(t.hsmDir);
  }
  const signKey = derOctetString(attrs(t, sign.publicKey, [CKA_EC_POINT])[0]!, "Ed25519 CKA_EC_POINT");
  if (signKey.length !== 32) throw new Error(`the Ed25519 public key is ${signKey.length} bytes, not 32`);
  const agreeKey = derOctetString(attrs(t, agree.publicKey, [CKA_EC_POINT])[0]!, "P-256 CKA_EC_POINT");
  if (agreeKey.length !== 65 || agreeKey[0] !== 0x04) {
    throw new Error("the P-256 public key is not an uncompressed SEC1 point");
  }
  return {
    id,
    sign,
    agree,
    seal,
    signKey: new Uint8Array(signKey),
    agreeKey: new Uint8Array(agreeKey),
    renewed: fresh,
  };
}

/** What the vendor root attests for this token's keys, and the module the HSM loads (its SHA-256). */
function pkcs11Body(
  t: OpenToken,
  life: Life,
  measurement: Uint8Array,
  module: { path: string; hash: Uint8Array },
): AttestationBody {
  const info = t.p11.C_GetTokenInfo(t.slot);
  const fw = info.firmwareVersion;
  return {
    platform: PLATFORM,
    vendor:
      "bkv test vendor root: PKCS#11 platform on SoftHSM2, which has no vendor attestation; the test vendor root " +
      "attests the keys the token made instead (development only). The token is files on the host's disk.",
    signKey: life.signKey,
    agreeKey: life.agreeKey,
    measurement,
    properties: [
      `token: ${trimPadded(info.manufacturerID)} / ${trimPadded(info.model)} (firmware ${fw.major}.${fw.minor})`,
      keyProperties(t, SIGN_LABEL, life.sign.privateKey),
      keyProperties(t, AGREE_LABEL, life.agree.privateKey),
      keyProperties(t, SEAL_LABEL, life.seal),
      "nvram: CKO_DATA token object, file-backed (whoever owns the disk can restore an old copy)",
      moduleProperty(module.hash, module.path),
    ],
  };
}

const PLATFORM = "pkcs11";

export interface Pkcs11ProvisionOptions {
  hsmDir: string;
  /** The vendor root that attests this HSM (SoftHSM2 has none: the folder's test vendor root). */
  vendor: VendorRoot;
  /** SHA-256 of the core this HSM is provisioned to run. */
  measurement: Uint8Array;
  /** The PKCS#11 module the HSM is to load (default DEFAULT_MODULE); its SHA-256 is attested. */
  module?: string;
  /** How long to wait for another live process to let go of the folder (folder-lock.ts). */
  lockWaitMs?: number;
}

/**
 * Provision a PKCS#11 HSM (the provisioning tool, never the HSM process): make its token if it has
 * none, its keys if none are alive, have the vendor root attest them with the measurement and the
 * SHA-256 of the module, and write the attestation, that root (the only one the HSM will trust:
 * @bkv/hsm-software provisioned.ts) and the module's path into its folder. Idempotent. Returns
 * whether new keys were made. Holds the folder's lock while it works, so it refuses (BkvError
 * UNAVAILABLE) while an HSM process of another pid runs on the folder.
 */
export function provisionPkcs11Hsm(o: Pkcs11ProvisionOptions): { renewed: boolean; attestation: Uint8Array } {
  const module = o.module ?? DEFAULT_MODULE;
  const unlock = lockHsmFolder(o.hsmDir, { waitMs: o.lockWaitMs });
  try {
    const hash = moduleHashOf(readFileSync(module));
    provisionToken(o.hsmDir, module);
    const t = openToken(o.hsmDir, module);
    try {
      const life = openLife(t);
      const attestation = attest(o.vendor, pkcs11Body(t, life, o.measurement, { path: module, hash }));
      writeProvisioned(t.hsmDir, attestation, o.vendor.publicKey);
      writeProvisionedModule(t.hsmDir, module);
      return { renewed: life.renewed, attestation };
    } finally {
      t.close();
    }
  } finally {
    unlock();
  }
}

/**
 * The platform of a provisioned PKCS#11 HSM. Before it loads the module it checks the module file's
 * SHA-256 against the HSM's attestation (module-check.ts: ModuleNotAttested otherwise). Throws
 * BkvError ATTESTATION ("needs an attestation") if its folder holds no attestation of its current
 * keys and this measurement verified by a root listed in vendor-roots.pub, and BkvError
 * UNAVAILABLE if another live process holds the folder (which it holds until close). It trusts in
 * other members' attestations only the roots that verify its own.
 */
export function pkcs11Platform(opts: Pkcs11PlatformOptions): Pkcs11Platform {
  const unlock = lockHsmFolder(opts.hsmDir, { waitMs: opts.lockWaitMs });
  try {
    const module = openAttestedModule(opts.hsmDir, opts.module ?? DEFAULT_MODULE);
    let t: OpenToken;
    try {
      t = openToken(opts.hsmDir, module.loadPath);
    } finally {
      module.close();
    }
    try {
      return build(t, opts, module.attestation, unlock);
    } catch (e) {
      t.close();
      throw e;
    }
  } catch (e) {
    unlock();
    throw e;
  }
}

function build(
  t: OpenToken,
  opts: Pkcs11PlatformOptions,
  checkedAttestation: Uint8Array,
  unlock: () => void,
): Pkcs11Platform {
  let closed = false;
  const { p11 } = t;
  /** Run one PKCS#11 operation; on failure, replace the session so no operation stays active. */
  const op = <T>(f: (session: Handle) => T): T => {
    if (closed) throw new Error("the PKCS#11 platform is closed");
    try {
      return f(t.session);
    } catch (e) {
      t.resetSession();
      throw e;
    }
  };
  const life = openLife(t);
  const { id, sign, agree, seal } = life;
  const { attestation, vendorRoots: roots } = readOwnAttestation(t.hsmDir, {
    platform: PLATFORM,
    signKey: life.signKey,
    agreeKey: life.agreeKey,
    measurement: opts.measurement,
  });
  if (!bytesEqual(attestation, checkedAttestation)) {
    throw new BkvError(
      ErrorCode.Attestation,
      "this HSM needs an attestation: attestation.bin changed between the module check and the key check; start it again",
    );
  }
  /** This core's seal key, derived again whenever the session was replaced (it is a session object). */
  let derived: { session: Handle; key: Handle } | null = null;
  const sealKeyNow = (s: Handle): Handle => {
    if (derived === null || derived.session !== s)
      derived = { session: s, key: sealKeyFor(t, seal, opts.measurement) };
    return derived.key;
  };

  const gcm = (iv: Buffer, aad: Uint8Array) => ({
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad: buf(aad), tagBits: 128 },
  });

  const random = (n: number): Buffer =>
    n === 0 ? Buffer.alloc(0) : op((s) => p11.C_GenerateRandom(s, Buffer.alloc(n)));

  /** The NVRAM objects of this life, core data and life record (others were destroyed at open). */
  const nvramObjects = () =>
    op(() => nvramObjectsOf(t)).filter((o) => o.value === null || o.value.life.equals(id));
  const newestSeq = () => {
    let n = 0n;
    for (const { value: v } of nvramObjects()) if (v !== null && v.seq > n) n = v.seq;
    return n;
  };
  /** The newest NVRAM sequence this process read at open or wrote since: one HSM, one writer. */
  let lastSeq = newestSeq();

  return {
    now: opts.now ?? (() => Date.now()),
    randomBytes(n) {
      return new Uint8Array(random(n));
    },
    crypto: nodeHsmCrypto(),

    async seal(plaintext, aad) {
      const iv = random(12);
      const out = op((s) => {
        p11.C_EncryptInit(s, gcm(iv, aad), sealKeyNow(s));
        return p11.C_Encrypt(s, buf(plaintext), Buffer.alloc(plaintext.length + 16));
      });
      return new Uint8Array(Buffer.concat([iv, out]));
    },
    async unseal(sealed, aad) {
      if (sealed.length < 28) throw new BkvError(ErrorCode.Malformed, "sealed blob too short");
      const iv = Buffer.from(sealed.subarray(0, 12));
      const body = Buffer.from(sealed.subarray(12));
      try {
        return new Uint8Array(
          op((s) => {
            p11.C_DecryptInit(s, gcm(iv, aad), sealKeyNow(s));
            return p11.C_Decrypt(s, body, Buffer.alloc(body.length));
          }),
        );
      } catch (e) {
        throw new BkvError(
          ErrorCode.Authentication,
          `unseal: the blob does not open under this HSM's seal key for the loaded core (sealed by other code, another HSM, or altered: ${describe(e)})`,
        );
      }
    },

    /** The newest value of this life; null if there is none or it is the life record (no core data). */
    async nvramRead() {
      let best: { kind: string; seq: bigint; data: Buffer } | null = null;
      for (const { value: v } of nvramObjects())
        if (v !== null && (best === null || v.seq > best.seq)) best = v;
      return best === null || best.kind !== "core" ? null : new Uint8Array(best.data);
    },
    /**
     * SoftHSM2 2.6.1 refuses C_SetAttributeValue on a data object's CKA_VALUE
     * (CKR_ATTRIBUTE_READ_ONLY), so a write creates a new object with the next sequence number,
     * flushes the token's files (SoftHSM2 never fsyncs), then destroys the older objects. A crash
     * in between leaves two objects and a read takes the higher sequence; a damaged object (a
     * crash during its creation, so the write never returned) is ignored and removed next time.
     * The first write replaces the life record the same way.
     *
     * Rollback caveat: the token is files on the host's disk. Whoever owns the disk can restore an
     * older copy of HSM_DIR/tokens and so roll the NVRAM back, which a real HSM's NVRAM prevents.
     */
    async nvramWrite(data) {
      const since = Date.now();
      const old = nvramObjects();
      let seq = 1n;
      for (const { value: v } of old) if (v !== null && v.seq >= seq) seq = v.seq + 1n;
      // Another process wrote this HSM's NVRAM since this one read or wrote it (its folder lock was
      // broken): write nothing and stop, rather than act on NVRAM it no longer knows.
      if (seq - 1n !== lastSeq) {
        throw new Error(
          "NVRAM changed under this HSM process: another process is using this HSM's identity; stopping",
        );
      }
      const value = encodeNvramValue(seq, id, data);
      op((s) => p11.C_CreateObject(s, nvramTemplate(value)));
      syncTokenFiles(t.hsmDir, since);
      for (const o of old) op((s) => p11.C_DestroyObject(s, o.handle));
      lastSeq = seq;
    },

    async identity() {
      return attestation;
    },
    async identitySign(message) {
      const sig = op((s) => {
        p11.C_SignInit(s, { mechanism: CKM_EDDSA }, sign.privateKey);
        return p11.C_Sign(s, buf(message), Buffer.alloc(64));
      });
      if (sig.length !== 64) throw new Error(`identitySign: a signature of ${sig.length} bytes`);
      return new Uint8Array(sig);
    },
    /**
     * ECDH inside the token. The shared x leaves the token (to the core, which derives its keys
     * from it); the agreement private key never does.
     */
    async identityAgree(peer) {
      if (peer.length !== 65 || peer[0] !== 0x04) {
        throw new Error("identityAgree: the peer key is not an uncompressed P-256 point");
      }
      let secret: Handle;
      try {
        secret = op((s) =>
          p11.C_DeriveKey(
            s,
            {
              mechanism: pkcs11js.CKM_ECDH1_DERIVE,
              parameter: ecdh(peer),
            },
            agree.privateKey,
            [
              { type: CKA_CLASS, value: CKO_SECRET_KEY },
              { type: CKA_KEY_TYPE, value: CKK_GENERIC_SECRET },
              { type: CKA_TOKEN, value: false },
              { type: CKA_SENSITIVE, value: false },
              { type: CKA_EXTRACTABLE, value: true },
              { type: CKA_VALUE_LEN, value: 32 },
            ],
          ),
        );
      } catch (e) {
        throw new Error(`identityAgree: ECDH failed (${describe(e)})`);
      }
      try {
        const x = op(() => attrs(t, secret, [CKA_VALUE]))[0]!;
        if (x.length !== 32) throw new Error(`identityAgree: a shared secret of ${x.length} bytes`);
        return new Uint8Array(x);
      } finally {
        try {
          p11.C_DestroyObject(t.session, secret);
        } catch {
          // A session object; it went with its session if op replaced it.
        }
      }
    },
    vendorRoots: () => roots,
    measurement: () => opts.measurement,

    close() {
      if (closed) return;
      closed = true;
      try {
        t.close();
      } finally {
        unlock();
      }
    },
  };
}
