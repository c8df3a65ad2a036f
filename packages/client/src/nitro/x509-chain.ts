/**
 * The X.509 part of an AWS Nitro Enclaves attestation: a chain of ECDSA P-384 / SHA-384
 * certificates from a pinned root to the certificate whose key signed the document, judged at one
 * moment (the document's own timestamp). Parsing is @peculiar/asn1-x509's; signatures are checked
 * with @noble/curves (p384), synchronously, in browsers and Node alike.
 *
 * Strict on purpose: a certificate must re-encode to exactly the bytes it came as (DER as issued),
 * be signed with ecdsa-with-SHA384 by the certificate before it, name that certificate as its
 * issuer, and be valid at the moment; every certificate but the last must be a CA whose path
 * length allows the certificates below it; the last must not be a CA and must allow digital
 * signatures.
 */

import { BkvError, bytesEqual, ErrorCode } from "@bkv/wire";
import { p384 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { AsnConvert } from "@peculiar/asn1-schema";
import { BasicConstraints, Certificate, KeyUsage, KeyUsageFlags } from "@peculiar/asn1-x509";

const ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3";
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const SECP384R1_DER = new Uint8Array([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
const BASIC_CONSTRAINTS = "2.5.29.19";
const KEY_USAGE = "2.5.29.15";

/** One certificate of a chain, parsed: what the verifier uses and what a report shows. */
export interface ParsedCertificate {
  der: Uint8Array;
  subject: string;
  notBefore: number;
  notAfter: number;
  /** SEC1 uncompressed P-384 point (97 bytes). */
  publicKey: Uint8Array;
  isCa: boolean;
  pathLength: number | undefined;
  canSign: boolean;
  cert: Certificate;
}

function u8(b: ArrayBuffer | Uint8Array): Uint8Array {
  return b instanceof Uint8Array ? b : new Uint8Array(b);
}

function bad(what: string): never {
  throw new BkvError(ErrorCode.Attestation, what);
}

function subjectText(c: Certificate): string {
  const parts: string[] = [];
  for (const rdn of c.tbsCertificate.subject) {
    for (const atv of rdn) {
      if (atv.type === "2.5.4.3") parts.push(`CN=${atv.value.toString()}`);
    }
  }
  return parts.join(",") || "(no common name)";
}

/** Parse one DER certificate; throws BkvError ATTESTATION naming `what` if it is not a strict one. */
export function parseCertificate(der: Uint8Array, what: string): ParsedCertificate {
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch (e) {
    bad(`${what} is not an X.509 certificate: ${(e as Error).message}`);
  }
  if (!bytesEqual(u8(AsnConvert.serialize(cert)), der))
    bad(`${what} is not DER as issued (it re-encodes differently)`);
  const tbs = cert.tbsCertificate;
  if (
    cert.signatureAlgorithm.algorithm !== ECDSA_WITH_SHA384 ||
    tbs.signature.algorithm !== ECDSA_WITH_SHA384
  )
    bad(`${what} is not signed with ecdsa-with-SHA384`);
  const spki = tbs.subjectPublicKeyInfo;
  if (
    spki.algorithm.algorithm !== EC_PUBLIC_KEY ||
    spki.algorithm.parameters == null ||
    !bytesEqual(u8(spki.algorithm.parameters), SECP384R1_DER)
  )
    bad(`${what} does not hold a P-384 key`);
  const publicKey = u8(spki.subjectPublicKey);
  try {
    p384.Point.fromBytes(publicKey).assertValidity();
  } catch {
    bad(`${what} holds a key that is not a point of P-384`);
  }
  let basic: BasicConstraints | undefined;
  let usage: number | undefined;
  for (const ext of tbs.extensions ?? []) {
    if (ext.extnID === BASIC_CONSTRAINTS) {
      if (basic !== undefined) bad(`${what} has two basic constraints`);
      basic = AsnConvert.parse(ext.extnValue, BasicConstraints);
    } else if (ext.extnID === KEY_USAGE) {
      if (usage !== undefined) bad(`${what} has two key usages`);
      usage = AsnConvert.parse(ext.extnValue, KeyUsage).toNumber();
    } else if (ext.critical) {
      bad(`${what} has a critical extension this verifier does not know (${ext.extnID})`);
    }
  }
  // A CA says so in its basic constraints and may sign certificates by its key usage (if stated).
  const isCa = basic?.cA === true && (usage === undefined || (usage & KeyUsageFlags.keyCertSign) !== 0);
  const pathLength = basic?.pathLenConstraint;
  const canSign = usage === undefined || (usage & KeyUsageFlags.digitalSignature) !== 0;
  return {
    der,
    subject: subjectText(cert),
    notBefore: tbs.validity.notBefore.getTime().getTime(),
    notAfter: tbs.validity.notAfter.getTime().getTime(),
    publicKey,
    isCa,
    pathLength,
    canSign,
    cert,
  };
}

/** Whether `child` is signed by `parent`'s key and names it as issuer. */
function signedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  const issuer = u8(AsnConvert.serialize(child.cert.tbsCertificate.issuer));
  const subject = u8(AsnConvert.serialize(parent.cert.tbsCertificate.subject));
  if (!bytesEqual(issuer, subject)) return false;
  const tbs = u8(AsnConvert.serialize(child.cert.tbsCertificate));
  try {
    // X.509 ECDSA signatures are DER; high S is as valid as low S there.
    return p384.verify(u8(child.cert.signatureValue), tbs, parent.publicKey, { format: "der", lowS: false });
  } catch {
    return false;
  }
}

/**
 * Verify `chain` (root first, the signing certificate last) at `at` (ms since the epoch). The
 * SHA-256 of the root's DER must be one of `pinnedRoots` (root certificate fingerprints). Throws BkvError: ATTESTATION for a wrong root,
 * signature, issuer or certificate kind; ATTESTATION_EXPIRED, naming the certificate and the
 * moment, if `at` is outside a certificate's validity.
 */
export function verifyChainAt(chain: ParsedCertificate[], pinnedRoots: Uint8Array[], at: number): void {
  const root = chain[0];
  if (root === undefined || chain.length < 2) bad("the certificate chain is too short");
  const fingerprint = sha256(root.der);
  if (!pinnedRoots.some((r) => bytesEqual(r, fingerprint)))
    bad(`the chain starts at ${root.subject}, which is not a pinned root`);
  const when = new Date(at).toISOString();
  for (const [i, c] of chain.entries()) {
    if (at < c.notBefore || at > c.notAfter)
      throw new BkvError(
        ErrorCode.AttestationExpired,
        `certificate ${i} (${c.subject}) is valid from ${new Date(c.notBefore).toISOString()} to ${new Date(c.notAfter).toISOString()}, not at the document's time ${when}`,
      );
    const last = i === chain.length - 1;
    if (!last) {
      if (!c.isCa) bad(`certificate ${i} (${c.subject}) is not a CA but issues certificate ${i + 1}`);
      const below = chain.length - 2 - i; // CA certificates below this one
      if (c.pathLength !== undefined && below > c.pathLength)
        bad(`certificate ${i} (${c.subject}) allows ${c.pathLength} CAs below it, the chain has ${below}`);
    } else {
      if (c.isCa) bad(`the signing certificate (${c.subject}) is a CA`);
      if (!c.canSign) bad(`the signing certificate (${c.subject}) may not sign`);
    }
    if (i > 0 && !signedBy(c, chain[i - 1]!))
      bad(`certificate ${i} (${c.subject}) is not signed by certificate ${i - 1} (${chain[i - 1]!.subject})`);
  }
}
