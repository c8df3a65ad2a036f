/**
 * One SoftHSM2 (or other PKCS#11) token per HSM, in the HSM's folder:
 *
 *   HSM_DIR/softhsm2.conf   directories.tokendir = HSM_DIR/tokens, objectstore.backend = file
 *   HSM_DIR/tokens/         the token's object files (SoftHSM2's own format)
 *   HSM_DIR/token-pin       the user PIN, mode 0600 (development only: a real HSM would take the PIN
 *                           from an operator card or a key ceremony, never a file)
 *
 * SoftHSM2 reads SOFTHSM2_CONF once, in C_Initialize, and a PKCS#11 module can be initialized only
 * once at a time per process. So `openToken` sets process.env.SOFTHSM2_CONF itself before loading
 * the module, and a process has at most one token open: each HSM is its own process (main.ts);
 * tests open and close tokens one after the other.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import pkcs11js from "pkcs11js";

export type P11 = InstanceType<typeof pkcs11js.PKCS11>;
export type Handle = Buffer;

export const DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so";
export const TOKEN_LABEL = "bkv-hsm";

/** PKCS#11 3.0 constants that pkcs11js 2.1.7 does not export. */
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;

/** DER OIDs for CKA_EC_PARAMS: id-Ed25519 (1.3.101.112) and prime256v1 (1.2.840.10045.3.1.7). */
export const ED25519_PARAMS = Buffer.from("06032b6570", "hex");
export const P256_PARAMS = Buffer.from("06082a8648ce3d030107", "hex");

export { pkcs11js };

export function confPath(hsmDir: string): string {
  return join(hsmDir, "softhsm2.conf");
}

/**
 * HSM_DIR/pkcs11-module: the path of the PKCS#11 module this HSM loads, written at provisioning. A
 * file on the operator's disk: what fixes the module is its SHA-256 in the HSM's attestation, which
 * the HSM checks before it loads the module (module-check.ts).
 */
export function modulePath(hsmDir: string): string {
  return join(hsmDir, "pkcs11-module");
}

export function writeProvisionedModule(hsmDir: string, module: string): void {
  writeDurably(modulePath(resolve(hsmDir)), `${module}\n`, 0o644);
}

/** The module fixed at provisioning (DEFAULT_MODULE if the folder names none). */
export function provisionedModule(hsmDir: string): string {
  let m: string;
  try {
    m = readFileSync(modulePath(hsmDir), "utf8").trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return DEFAULT_MODULE;
    throw e;
  }
  if (m === "") throw new Error(`${modulePath(hsmDir)} names no PKCS#11 module`);
  return m;
}

export function pinPath(hsmDir: string): string {
  return join(hsmDir, "token-pin");
}

export function tokenDir(hsmDir: string): string {
  return join(hsmDir, "tokens");
}

function confText(hsmDir: string): string {
  return [
    "# SoftHSM2 configuration of this HSM's token (written by @bkv/hsm-pkcs11)",
    `directories.tokendir = ${tokenDir(hsmDir)}`,
    "objectstore.backend = file",
    "log.level = ERROR",
    "slots.removable = false",
    "",
  ].join("\n");
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeDurably(path: string, text: string, mode: number): void {
  const fd = openSync(path, "w", mode);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  fsyncPath(join(path, ".."));
}

/** Trailing blanks and NULs: PKCS#11 pads labels to 32 bytes (pkcs11js pads with NUL). */
export function trimPadded(s: string): string {
  return s.replace(/[\s\0]+$/, "");
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An open module with one read/write session logged in as the token's user. */
export interface OpenToken {
  hsmDir: string;
  p11: P11;
  slot: Handle;
  /** The session; replaced by resetSession. */
  session: Handle;
  /**
   * Replace the session with a new one (still logged in: the login belongs to the application).
   * After a failed C_Sign, C_Encrypt, … SoftHSM2 can leave the operation active (a later *Init
   * fails with CKR_OPERATION_ACTIVE) and PKCS#11 2.40 has no way to cancel it but closing the session.
   */
  resetSession(): void;
  /** Logs out, closes the session and finalizes the module. */
  close(): void;
}

let active: OpenToken | null = null;

/** The token open in this process, if any. */
export function activeToken(): OpenToken | null {
  return active;
}

function loadModule(hsmDir: string, module: string): P11 {
  if (active !== null) {
    throw new Error(
      `a PKCS#11 token (${active.hsmDir}) is already open in this process; close it first (one token per process)`,
    );
  }
  // SoftHSM2 reads its configuration in C_Initialize, from the file this variable names.
  process.env["SOFTHSM2_CONF"] = confPath(hsmDir);
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(module);
    p11.C_Initialize();
  } catch (e) {
    throw new Error(`cannot load PKCS#11 module ${module}: ${describe(e)}`);
  }
  return p11;
}

function findTokenSlot(p11: P11): Handle | null {
  for (const slot of p11.C_GetSlotList(true)) {
    const info = p11.C_GetTokenInfo(slot);
    if (trimPadded(info.label) === TOKEN_LABEL && (info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0) {
      return slot;
    }
  }
  return null;
}

function readPin(hsmDir: string): string {
  let pin: string;
  try {
    pin = readFileSync(pinPath(hsmDir), "utf8").trim();
  } catch (e) {
    throw new Error(
      `cannot read the token PIN ${pinPath(hsmDir)}: ${describe(e)} (provision the token first)`,
    );
  }
  if (pin.length < 4) throw new Error(`${pinPath(hsmDir)} does not hold a PIN`);
  return pin;
}

/**
 * Make HSM_DIR's token if it has none: the configuration file, the token folder, a random user PIN
 * in HSM_DIR/token-pin and a token labelled "bkv-hsm" initialized through C_InitToken and
 * C_InitPIN. The SO PIN is random and thrown away: nobody can re-initialize the token or reset the
 * user PIN. Idempotent: a folder whose token exists is left as it is (the configuration is
 * rewritten if it differs). Returns whether a token was made. Loads and finalizes the module.
 */
export function provisionToken(hsmDir: string, module: string = DEFAULT_MODULE): boolean {
  const dir = resolve(hsmDir);
  mkdirSync(tokenDir(dir), { recursive: true, mode: 0o700 });
  let conf: string | null = null;
  try {
    conf = readFileSync(confPath(dir), "utf8");
  } catch {
    conf = null;
  }
  if (conf !== confText(dir)) writeDurably(confPath(dir), confText(dir), 0o600);
  const p11 = loadModule(dir, module);
  try {
    const existing = findTokenSlot(p11);
    if (existing !== null) {
      if ((p11.C_GetTokenInfo(existing).flags & pkcs11js.CKF_USER_PIN_INITIALIZED) === 0) {
        // A crash between C_InitToken and C_InitPIN: no key can exist yet (keys need the user).
        throw new Error(
          `the token has no user PIN (provisioning was interrupted): remove ${tokenDir(dir)} and retry`,
        );
      }
      return false;
    }
    // The PIN file is written first: a crash after it leaves a PIN and no token, and the next
    // provisioning uses that PIN.
    let pin: string;
    try {
      pin = readPin(dir);
    } catch {
      pin = randomBytes(24).toString("base64url");
      writeDurably(pinPath(dir), `${pin}\n`, 0o600);
    }
    const free = p11
      .C_GetSlotList(true)
      .find((s) => (p11.C_GetTokenInfo(s).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
    if (free === undefined) throw new Error(`no free slot for a new token in ${tokenDir(dir)}`);
    const soPin = randomBytes(24).toString("base64url");
    p11.C_InitToken(free, soPin, TOKEN_LABEL.padEnd(32, " "));
    const slot = findTokenSlot(p11);
    if (slot === null) throw new Error("C_InitToken succeeded but the token is not found");
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      p11.C_Login(session, pkcs11js.CKU_SO, soPin);
      p11.C_InitPIN(session, pin);
      p11.C_Logout(session);
    } finally {
      p11.C_CloseSession(session);
    }
    syncTokenFiles(dir);
    return true;
  } catch (e) {
    throw new Error(`provisioning the token in ${dir} failed: ${describe(e)}`);
  } finally {
    p11.C_Finalize();
  }
}

/** Open HSM_DIR's token (provisioned before) with one logged-in read/write session. */
export function openToken(hsmDir: string, module: string = DEFAULT_MODULE): OpenToken {
  const dir = resolve(hsmDir);
  const pin = readPin(dir);
  const p11 = loadModule(dir, module);
  let session: Handle | null = null;
  try {
    const slot = findTokenSlot(p11);
    if (slot === null) throw new Error(`no "${TOKEN_LABEL}" token in ${tokenDir(dir)} (provision it first)`);
    session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    p11.C_Login(session, pkcs11js.CKU_USER, pin);
    const token: OpenToken = {
      hsmDir: dir,
      p11,
      slot,
      session,
      resetSession() {
        const old = token.session;
        token.session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
        p11.C_CloseSession(old);
      },
      close() {
        if (active !== token) return;
        active = null;
        try {
          p11.C_Logout(token.session);
          p11.C_CloseSession(token.session);
        } finally {
          p11.C_Finalize();
        }
      },
    };
    active = token;
    return token;
  } catch (e) {
    if (session !== null) p11.C_CloseSession(session);
    p11.C_Finalize();
    throw new Error(`cannot open the token in ${dir}: ${describe(e)}`);
  }
}

/**
 * SoftHSM2 2.6.1 writes its object files in place and never calls fsync. After a write that must
 * survive a crash (NVRAM), flush the token folder's files changed since `since` (ms since the
 * epoch, with a second's margin for coarse file times; 0: all of them) and the folders themselves.
 */
export function syncTokenFiles(hsmDir: string, since = 0): void {
  const root = tokenDir(hsmDir);
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    for (const f of readdirSync(dir)) {
      if (!f.endsWith(".object")) continue; // the .lock files are empty; generation is a cache hint
      const path = join(dir, f);
      if (since === 0 || statSync(path).mtimeMs >= since - 1000) fsyncPath(path);
    }
    fsyncPath(dir);
  }
  fsyncPath(root);
}

// --- attributes ---

export function attrs(t: OpenToken, object: Handle, types: number[]): Buffer[] {
  return t.p11
    .C_GetAttributeValue(
      t.session,
      object,
      types.map((type) => ({ type })),
    )
    .map((a) => a.value);
}

export function bool(b: Buffer | undefined): boolean {
  if (b === undefined || b.length === 0) throw new Error("missing boolean attribute");
  return b[0] !== 0;
}

/** A CK_ULONG in host byte order (little-endian on the platforms we run on). */
export function ulong(b: Buffer | undefined): number {
  if (b === undefined) throw new Error("missing CK_ULONG attribute");
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  throw new Error(`a CK_ULONG of ${b.length} bytes`);
}

/** Objects matching a template. */
export function find(t: OpenToken, template: { type: number; value?: number | boolean | string | Buffer }[]) {
  t.p11.C_FindObjectsInit(t.session, template);
  try {
    const out: Handle[] = [];
    for (;;) {
      const batch = t.p11.C_FindObjects(t.session, 64);
      if (batch.length === 0) return out;
      out.push(...batch);
    }
  } finally {
    t.p11.C_FindObjectsFinal(t.session);
  }
}

/**
 * A Buffer with the bytes of b whose data pointer is never NULL: pkcs11js passes an empty Buffer
 * as a NULL pointer, which SoftHSM2 refuses (CKR_ARGUMENTS_BAD) in C_Sign and C_Encrypt even with
 * length 0. An empty view into a one-byte buffer has a real pointer.
 */
export function buf(b: Uint8Array): Buffer {
  return b.length === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(b);
}

/** The content of a DER OCTET STRING (how PKCS#11 encodes CKA_EC_POINT). */
export function derOctetString(b: Buffer, what: string): Buffer {
  if (b.length < 2 || b[0] !== 0x04) throw new Error(`${what}: not a DER OCTET STRING`);
  let len = b[1]!;
  let off = 2;
  if (len === 0x81) {
    len = b[2] ?? -1;
    off = 3;
  } else if (len > 0x7f) {
    throw new Error(`${what}: unexpected DER length`);
  }
  if (off + len !== b.length) throw new Error(`${what}: DER length does not match`);
  return b.subarray(off);
}
