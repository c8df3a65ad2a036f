/**
 * What provisioning leaves in an HSM's folder for the HSM process to read (it never writes them):
 *
 *   HSM_DIR/attestation.bin    this HSM's attestation: its identity public keys and the measurement
 *                              of the core it is provisioned for, signed by the vendor root
 *   HSM_DIR/vendor-roots.pub   the vendor roots this HSM trusts in other members' attestations
 *                              (one hex public key a line), fixed at provisioning
 *
 * The vendor root's private key is never in the HSM's folder or process: the provisioning tool
 * (provision.ts, `bkv dev`) holds it and signs. The HSM process only checks that the attestation is
 * its own (its keys, the measurement of the core it loaded, signed by one of its trusted roots) and
 * refuses to serve otherwise: an HSM whose NVRAM was wiped has new keys and needs a new attestation.
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
import { ed25519VerifyWith } from "./node-crypto.js";

export const ATTESTATION_FILE = "attestation.bin";
export const VENDOR_ROOTS_FILE = "vendor-roots.pub";

/** Exit code of an HSM process whose folder holds no attestation of its current keys and core. */
export const EXIT_NEEDS_ATTESTATION = 75;

const ROOTS_HEADER =
  "# Vendor roots this HSM trusts (Ed25519 public keys, hex, one a line), fixed at provisioning";

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

/** Write the attestation and the trusted roots into the HSM's folder (the provisioning tool). */
export function writeProvisioned(dir: string, attestation: Uint8Array, roots: Uint8Array[]): void {
  if (roots.length === 0) throw new Error("an HSM must trust at least one vendor root");
  writeDurably(
    join(dir, VENDOR_ROOTS_FILE),
    `${ROOTS_HEADER}\n${roots.map((r) => toHex(r)).join("\n")}\n`,
    0o644,
  );
  writeDurably(join(dir, ATTESTATION_FILE), attestation, 0o644);
}

/** The vendor roots fixed in the folder at provisioning. */
export function readTrustedRoots(dir: string): Uint8Array[] {
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

/**
 * This HSM's attestation from its folder, checked against what the HSM knows (its public keys, the
 * measurement of the core it loaded) and its trusted roots. Throws BkvError ATTESTATION ("needs an
 * attestation") if it is missing, of other keys (NVRAM wiped: new keys), of another core, or not
 * signed by a trusted root.
 */
export function readOwnAttestation(dir: string, own: OwnIdentity, roots: Uint8Array[]): Uint8Array {
  const bytes = readOrNull(join(dir, ATTESTATION_FILE));
  if (bytes === null) throw needsAttestation(dir, `${ATTESTATION_FILE} is missing`);
  let body: AttestationBody & { signature: Uint8Array };
  try {
    body = decodeAttestation(new Uint8Array(bytes));
  } catch (e) {
    throw needsAttestation(dir, `${ATTESTATION_FILE} does not decode (${(e as Error).message})`);
  }
  if (body.platform !== own.platform) throw needsAttestation(dir, `it attests platform ${body.platform}`);
  if (!bytesEqual(body.signKey, own.signKey) || !bytesEqual(body.agreeKey, own.agreeKey)) {
    throw needsAttestation(dir, "it attests other identity keys (new keys were made: NVRAM was empty)");
  }
  if (!bytesEqual(body.measurement, own.measurement)) {
    throw needsAttestation(dir, "it attests another core (the loaded core's measurement differs)");
  }
  const signed = attestationSignedBytes(body);
  if (!roots.some((r) => ed25519VerifyWith(r, signed, body.signature))) {
    throw needsAttestation(dir, "it is not signed by a vendor root this HSM trusts");
  }
  return new Uint8Array(bytes);
}
