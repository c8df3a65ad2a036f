/**
 * What provisioning leaves in an HSM's folder for the HSM process to read (it never writes them):
 *
 *   HSM_DIR/attestation.bin    this HSM's attestation: its identity public keys and the measurement
 *                              of the core it is provisioned for, signed by the vendor root
 *   HSM_DIR/vendor-roots.pub   the vendor root that attested this HSM (one hex public key a line)
 *
 * The vendor root's private key is never in the HSM's folder or process: the provisioning tool
 * (provision.ts, `bkv dev`) holds it and signs. The HSM process checks that the attestation is its
 * own (its keys, the measurement of the core it loaded, signed by a root in vendor-roots.pub) and
 * refuses to serve otherwise: an HSM whose NVRAM was wiped has new keys and needs a new attestation.
 *
 * An HSM trusts, in other members' attestations, only the vendor root that signed its OWN
 * attestation. vendor-roots.pub is a file on the operator's disk and may list more roots, but a root
 * counts only if it verifies this HSM's own attestation (if several do, those). So a root the
 * operator adds to the file is never trusted; an operator who re-attests the HSM itself under its
 * own root makes the HSM's own attestation chain to that root, which every client that pinned the
 * genuine vendor root, and `bkv audit`, refuse. One consequence: every member of a fleet is attested
 * by the same vendor root (the members check each other's attestations against their own root).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type AttestationBody,
  attestationSignedBytes,
  BkvError,
  bytesEqual,
  decodeAttestation,
  ErrorCode,
  fromHex,
  toHex,
} from "@bkv/wire";
import { EXIT_FOLDER_IN_USE } from "./folder-lock.js";
import { ed25519VerifyWith } from "./node-crypto.js";

export const ATTESTATION_FILE = "attestation.bin";
export const VENDOR_ROOTS_FILE = "vendor-roots.pub";

/** Exit code of an HSM process whose folder holds no attestation of its current keys and core. */
export const EXIT_NEEDS_ATTESTATION = 75;

/**
 * The exit code of an HSM process that could not start: EXIT_NEEDS_ATTESTATION, EXIT_FOLDER_IN_USE
 * (another live process holds its folder: folder-lock.ts), or 1.
 */
export function startExitCode(e: unknown): number {
  if (!(e instanceof BkvError)) return 1;
  if (e.code === ErrorCode.Attestation) return EXIT_NEEDS_ATTESTATION;
  if (e.code === ErrorCode.Unavailable) return EXIT_FOLDER_IN_USE;
  return 1;
}

const ROOTS_HEADER =
  "# The vendor root that attested this HSM (Ed25519 public key, hex), written at provisioning.\n" +
  "# The HSM trusts only a root listed here that verifies its own attestation.bin; more lines add no trust.";

export function writeDurably(path: string, data: Uint8Array | string, mode = 0o600): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(join(path, ".."), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function needsAttestation(dir: string, why: string): BkvError {
  return new BkvError(
    ErrorCode.Attestation,
    `this HSM needs an attestation: ${why}. Provision it (bkv dev does; or node @bkv/hsm-*/provision ` +
      `--dir ${dir} --vendor-key FILE --core FILE), then start it again`,
  );
}

/**
 * Write the attestation and the root that signed it into the HSM's folder (the provisioning tool).
 * Refuses an attestation that root does not verify: it would leave an HSM that trusts no root.
 */
export function writeProvisioned(dir: string, attestation: Uint8Array, root: Uint8Array): void {
  const body = decodeAttestation(attestation);
  if (!ed25519VerifyWith(root, attestationSignedBytes(body), body.signature)) {
    throw new Error("the attestation is not signed by the vendor root given with it");
  }
  writeDurably(join(dir, VENDOR_ROOTS_FILE), `${ROOTS_HEADER}\n${toHex(root)}\n`, 0o644);
  writeDurably(join(dir, ATTESTATION_FILE), attestation, 0o644);
}

/**
 * The roots listed in the folder's vendor-roots.pub. Not what the HSM trusts: that is only those of
 * them that verify its own attestation (readOwnAttestation).
 */
export function readListedRoots(dir: string): Uint8Array[] {
  const text = readOrNull(join(dir, VENDOR_ROOTS_FILE));
  if (text === null) throw needsAttestation(dir, `${VENDOR_ROOTS_FILE} is missing`);
  const lines = text
    .toString("utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length === 0 || !lines.every((l) => /^[0-9a-f]{64}$/.test(l))) {
    throw new BkvError(
      ErrorCode.Malformed,
      `${join(dir, VENDOR_ROOTS_FILE)}: expected lines of 64 hex digits`,
    );
  }
  return lines.map((l) => fromHex(l));
}

/** What the HSM knows of itself, which its attestation must say. */
export interface OwnIdentity {
  platform: string;
  signKey: Uint8Array;
  agreeKey: Uint8Array;
  measurement: Uint8Array;
}

/** This HSM's attestation and the vendor roots it trusts: those that signed that attestation. */
export interface OwnAttestation {
  attestation: Uint8Array;
  /** The roots of vendor-roots.pub that verify `attestation` (at least one). */
  vendorRoots: Uint8Array[];
}

/**
 * The folder's attestation.bin with the roots of vendor-roots.pub that verify it (at least one),
 * before anything else is checked: what an HSM process may rely on before it can know its own keys
 * (the PKCS#11 process checks its module against it before loading the module). Throws BkvError
 * ATTESTATION ("needs an attestation") if either file is missing, it does not decode, or no listed
 * root verifies it.
 */
export function readProvisionedAttestation(dir: string): {
  bytes: Uint8Array;
  body: AttestationBody & { signature: Uint8Array };
  vendorRoots: Uint8Array[];
} {
  const listed = readListedRoots(dir);
  const bytes = readOrNull(join(dir, ATTESTATION_FILE));
  if (bytes === null) throw needsAttestation(dir, `${ATTESTATION_FILE} is missing`);
  let body: AttestationBody & { signature: Uint8Array };
  try {
    body = decodeAttestation(new Uint8Array(bytes));
  } catch (e) {
    throw needsAttestation(dir, `${ATTESTATION_FILE} does not decode (${(e as Error).message})`);
  }
  const signed = attestationSignedBytes(body);
  const vendorRoots = listed.filter(
    (r, i) => listed.findIndex((o) => bytesEqual(o, r)) === i && ed25519VerifyWith(r, signed, body.signature),
  );
  if (vendorRoots.length === 0) {
    throw needsAttestation(dir, `it is not signed by a vendor root listed in ${VENDOR_ROOTS_FILE}`);
  }
  return { bytes: new Uint8Array(bytes), body, vendorRoots };
}

/**
 * This HSM's attestation from its folder, checked against what the HSM knows (its public keys, the
 * measurement of the core it loaded), and the roots it trusts: of the roots listed in
 * vendor-roots.pub, only those that verify this attestation. Throws BkvError ATTESTATION ("needs an
 * attestation") if it is missing, verified by no listed root, of other keys (NVRAM wiped: new
 * keys), or of another core.
 */
export function readOwnAttestation(dir: string, own: OwnIdentity): OwnAttestation {
  const { bytes, body, vendorRoots } = readProvisionedAttestation(dir);
  if (body.platform !== own.platform) throw needsAttestation(dir, `it attests platform ${body.platform}`);
  if (!bytesEqual(body.signKey, own.signKey) || !bytesEqual(body.agreeKey, own.agreeKey)) {
    throw needsAttestation(dir, "it attests other identity keys (new keys were made: NVRAM was empty)");
  }
  if (!bytesEqual(body.measurement, own.measurement)) {
    throw needsAttestation(dir, "it attests another core (the loaded core's measurement differs)");
  }
  return { attestation: bytes, vendorRoots };
}
