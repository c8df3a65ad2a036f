/**
 * An HSM's attested identity. Each HSM makes two key pairs inside and never exports them:
 *   - signKey: Ed25519 (32 bytes), signs the genesis statement;
 *   - agreeKey: ECDH on P-256 (SEC1 uncompressed, 65 bytes), the base of the keys it shares with
 *     the other members (peer channel, genesis packages).
 * Its platform attests both keys together with the measurement of the code the HSM runs, signed by
 * a vendor root (Ed25519). A real HSM's vendor chain would go here; the software and SoftHSM2
 * platforms use a test vendor root and say so in `vendor`.
 *
 * A second kind names a vendor's own attestation document instead of a vendor root's Ed25519
 * signature: an AWS Nitro Enclaves attestation document (`nitroDocument`, COSE_Sign1 signed through
 * the AWS Nitro PKI). Its encoding starts with another domain; its `signature` is empty, and what
 * it claims (keys, measurement) holds only if the document says so: the verifier
 * (@bkv/client, nitro/) checks the document's chain, its user data (which must name exactly these
 * keys) and its PCRs (whose digest must be this measurement).
 *
 * Canonical bytes: decode(encode(x)) == x and encode(decode(b)) == b, so signatures over the
 * encoding are unambiguous.
 */
import { utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";

export const SIGN_KEY_LENGTH = 32;
export const AGREE_KEY_LENGTH = 65;
export const MEASUREMENT_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

const ATTESTATION_DOMAIN = utf8("bkv-attestation/v1");
const NITRO_ATTESTATION_DOMAIN = utf8("bkv-attestation-nitro/v1");
/** The longest vendor attestation document an attestation may carry. */
export const MAX_VENDOR_DOCUMENT = 16 * 1024;
/** The `platform` of an attestation carrying an AWS Nitro Enclaves attestation document. */
export const NITRO_PLATFORM = "aws-nitro";

export interface AttestationBody {
  /** The platform that made the keys: "software" or "pkcs11". */
  platform: string;
  /** Who vouches for the keys, in words a person reads in the audit report. */
  vendor: string;
  signKey: Uint8Array;
  agreeKey: Uint8Array;
  /** SHA-256 of the HSM core code this HSM runs. */
  measurement: Uint8Array;
  /** What the platform states about the keys, e.g. "CKA_EXTRACTABLE=false". */
  properties: string[];
}

export interface Attestation extends AttestationBody {
  /** Ed25519 signature by the vendor root over attestationSignedBytes(body); empty for a Nitro one. */
  signature: Uint8Array;
  /**
   * The second kind: an AWS Nitro Enclaves attestation document (COSE_Sign1, as the Nitro Secure
   * Module returned it) that must name these keys and this measurement; `platform` is "aws-nitro".
   */
  nitroDocument?: Uint8Array;
}

function writeBody(w: Writer, a: AttestationBody): Writer {
  return w
    .string(a.platform)
    .string(a.vendor)
    .fixed(a.signKey)
    .fixed(a.agreeKey)
    .fixed(a.measurement)
    .list(a.properties, (w, p) => {
      w.string(p);
    });
}

/** The bytes the vendor root signs. */
export function attestationSignedBytes(a: AttestationBody): Uint8Array {
  return writeBody(new Writer().fixed(ATTESTATION_DOMAIN), a).finish();
}

export function encodeAttestation(a: Attestation): Uint8Array {
  if (a.nitroDocument !== undefined) {
    check(a.platform === NITRO_PLATFORM, `attestation: a Nitro document's platform is ${NITRO_PLATFORM}`);
    check(a.signature.length === 0, "attestation: a Nitro attestation carries no root signature");
    return writeBody(new Writer().fixed(NITRO_ATTESTATION_DOMAIN), a).bytes(a.nitroDocument).finish();
  }
  return writeBody(new Writer().fixed(ATTESTATION_DOMAIN), a).fixed(a.signature).finish();
}

function hasPrefix(r: Reader, prefix: Uint8Array): boolean {
  const head = r.peek(prefix.length);
  return head.length === prefix.length && head.every((x, i) => x === prefix[i]);
}

export function readAttestation(r: Reader): Attestation {
  const nitro = hasPrefix(r, NITRO_ATTESTATION_DOMAIN);
  const expected = nitro ? NITRO_ATTESTATION_DOMAIN : ATTESTATION_DOMAIN;
  const domain = r.fixed(expected.length, "attestation domain");
  check(
    domain.every((x, i) => x === expected[i]),
    "attestation: wrong domain",
  );
  const platform = r.string("platform", 64);
  const vendor = r.string("vendor", 512);
  const signKey = r.fixed(SIGN_KEY_LENGTH, "sign key");
  const agreeKey = r.fixed(AGREE_KEY_LENGTH, "agree key");
  check(agreeKey[0] === 0x04, "attestation: agree key is not an uncompressed P-256 point");
  const measurement = r.fixed(MEASUREMENT_LENGTH, "measurement");
  const properties = r.list("properties", 32, (r) => r.string("property", 256));
  if (nitro) {
    check(platform === NITRO_PLATFORM, `attestation: a Nitro document's platform is ${NITRO_PLATFORM}`);
    const nitroDocument = r.bytes("Nitro attestation document", MAX_VENDOR_DOCUMENT);
    check(nitroDocument.length > 0, "attestation: empty Nitro attestation document");
    const signature = new Uint8Array(0);
    return { platform, vendor, signKey, agreeKey, measurement, properties, signature, nitroDocument };
  }
  const signature = r.fixed(SIGNATURE_LENGTH, "attestation signature");
  return { platform, vendor, signKey, agreeKey, measurement, properties, signature };
}

export function decodeAttestation(b: Uint8Array): Attestation {
  const r = new Reader(b, "attestation");
  const a = readAttestation(r);
  r.end();
  return a;
}
