/**
 * The PKCS#11 module an HSM loads is native code inside the HSM process, next to the fleet's
 * secrets. HSM_DIR/pkcs11-module names it, but that is a file on the operator's disk; what fixes it
 * is the HSM's attestation: provisioning hashes the module and the vendor root signs that hash among
 * the attestation's properties ("pkcs11-module: sha256=…"). Before it loads a module, the HSM process
 * opens the file, hashes what it opened, and refuses (exit EXIT_MODULE_NOT_ATTESTED) unless its own
 * attestation, verified by a root listed in vendor-roots.pub, names that hash; it then loads the
 * very file it hashed (through /proc/self/fd where there is one, so a file renamed over the path in
 * between is not what gets loaded).
 *
 * A guard, not a boundary: the HSM process's own JavaScript (its main script, node_modules with
 * pkcs11js and its native addon), Node itself, and the libraries the module links to are not
 * measured, and the operator who owns the disk can replace them (docs/platforms.md).
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { readProvisionedAttestation } from "@bkv/hsm-software";
import { type AttestationBody, BkvError, ErrorCode, toHex } from "@bkv/wire";

/** Exit code of a PKCS#11 HSM process whose module is not the one its attestation names. */
export const EXIT_MODULE_NOT_ATTESTED = 76;

const PREFIX = "pkcs11-module: sha256=";

/** The refusal to load a module that the HSM's attestation does not name. */
export class ModuleNotAttested extends BkvError {
  constructor(message: string) {
    super(ErrorCode.Attestation, message);
  }
}

export function moduleHashOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The attestation property that names a module (its path only where it fits: properties are short). */
export function moduleProperty(hash: Uint8Array, path: string): string {
  const p = `${PREFIX}${toHex(hash)}`;
  const withPath = `${p} (${path})`;
  return withPath.length <= 256 ? withPath : p;
}

/** The module hashes an attestation names (hex). */
export function attestedModuleHashes(body: Pick<AttestationBody, "properties">): string[] {
  return body.properties
    .filter((p) => p.startsWith(PREFIX))
    .map((p) => p.slice(PREFIX.length, PREFIX.length + 64));
}

export interface AttestedModule {
  /** What to pass to dlopen: the opened file itself (/proc/self/fd/N) where the system has one. */
  loadPath: string;
  /** The attestation the check relied on: the platform must find the very same one its own. */
  attestation: Uint8Array;
  /** Close the file descriptor (after the module is loaded). */
  close(): void;
}

/**
 * Open the module file, hash it, and check the hash against this HSM's attestation in hsmDir.
 * Throws BkvError ATTESTATION (needs an attestation) if the folder holds no attestation verified by
 * a listed root, and ModuleNotAttested if the attestation names no module or another one.
 */
export function openAttestedModule(hsmDir: string, module: string): AttestedModule {
  const { bytes, body } = readProvisionedAttestation(hsmDir);
  const attested = attestedModuleHashes(body);
  if (attested.length === 0) {
    throw new ModuleNotAttested(
      `refusing to load the PKCS#11 module ${module}: this HSM's attestation names no module ` +
        "(provisioned by an older version); provision it again",
    );
  }
  let fd: number;
  try {
    fd = openSync(module, "r");
  } catch (e) {
    throw new ModuleNotAttested(`cannot open the PKCS#11 module ${module}: ${(e as Error).message}`);
  }
  try {
    const hash = toHex(moduleHashOf(readFileSync(fd)));
    if (!attested.includes(hash)) {
      throw new ModuleNotAttested(
        `refusing to load the PKCS#11 module ${module}: its SHA-256 is ${hash}, but this HSM's ` +
          `attestation names ${attested.join(", ")} (the module fixed at provisioning). Provision the ` +
          "HSM again if its module is meant to change",
      );
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const viaFd = `/proc/self/fd/${fd}`;
  let closed = false;
  return {
    loadPath: existsSync(viaFd) ? viaFd : module,
    attestation: bytes,
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}
