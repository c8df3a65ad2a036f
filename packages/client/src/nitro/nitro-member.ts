/**
 * A fleet member whose attestation is an AWS Nitro Enclaves document (the second attestation kind
 * of @bkv/wire), judged on exactly what the document states:
 *
 *   - its chain ends in a pinned root and its COSE signature verifies (nitro-document.ts);
 *   - its user_data names the member's keys: "bkv-nitro-member/v1" || signKey || agreeKey, byte for
 *     byte (else ATTESTATION_KEYS: a genuine document of another enclave, or of other keys, proves
 *     nothing about this member);
 *   - its PCR0, PCR1 and PCR2 (the enclave image, its kernel and boot, its application, as
 *     `nitro-cli build-enclave` prints them for a reproducible build) digest to the member's
 *     measurement: SHA-256("bkv-nitro-image/v1" || PCR0 || PCR1 || PCR2); a debug-mode enclave
 *     (PCR0 all zero: its parent may read its console and no image is attested) never counts.
 *
 * The member's `properties` and `vendor` text say nothing the document does not: they are shown,
 * never trusted.
 */
import {
  type Attestation,
  BkvError,
  bytesEqual,
  concatBytes,
  ErrorCode,
  NITRO_PLATFORM,
  toHex,
  utf8,
} from "@bkv/wire";
import { sha256 } from "@noble/hashes/sha2.js";
import { type NitroDocument, verifyNitroDocument } from "./nitro-document.js";

const MEMBER_DOMAIN = utf8("bkv-nitro-member/v1");
const IMAGE_DOMAIN = utf8("bkv-nitro-image/v1");

/** The user_data a Nitro member asks its NSM to sign: it names exactly its two keys. */
export function nitroMemberUserData(signKey: Uint8Array, agreeKey: Uint8Array): Uint8Array {
  return concatBytes(MEMBER_DOMAIN, signKey, agreeKey);
}

/** The measurement of a Nitro enclave image, from its PCR0, PCR1 and PCR2 (48 bytes each). */
export function nitroImageMeasurement(pcr0: Uint8Array, pcr1: Uint8Array, pcr2: Uint8Array): Uint8Array {
  for (const p of [pcr0, pcr1, pcr2])
    if (p.length !== 48)
      throw new BkvError(ErrorCode.Invalid, "a PCR of a Nitro image is 48 bytes (SHA-384)");
  return sha256(concatBytes(IMAGE_DOMAIN, pcr0, pcr1, pcr2));
}

/** The image measurement a verified document states (MEASUREMENT if it lacks PCR0, 1 or 2). */
export function documentImageMeasurement(doc: NitroDocument): Uint8Array {
  const [p0, p1, p2] = [0, 1, 2].map((i) => doc.pcrs.get(i));
  if (p0 === undefined || p1 === undefined || p2 === undefined)
    throw new BkvError(ErrorCode.Measurement, "the Nitro document does not state PCR0, PCR1 and PCR2");
  return nitroImageMeasurement(p0, p1, p2);
}

/** A verified Nitro member: the document and the root fingerprint its chain ends in. */
export interface NitroMemberVerdict {
  document: NitroDocument;
  /** SHA-256 of the root certificate, hex. */
  root: string;
  /** The document's own time, ISO 8601. */
  time: string;
}

/**
 * Verify that `a` (a Nitro attestation) is attested by its document under `pinnedRoots` (root
 * certificate fingerprints). Throws BkvError: MALFORMED, ATTESTATION, ATTESTATION_EXPIRED (the
 * document), ATTESTATION_KEYS (it does not name a's keys), MEASUREMENT (its PCRs are not a's
 * measurement, or a debug-mode enclave).
 */
export function verifyNitroMember(a: Attestation, pinnedRoots: Uint8Array[]): NitroMemberVerdict {
  if (a.nitroDocument === undefined || a.platform !== NITRO_PLATFORM)
    throw new BkvError(ErrorCode.Attestation, "not a Nitro attestation");
  const doc = verifyNitroDocument(a.nitroDocument, pinnedRoots);
  const image = documentImageMeasurement(doc);
  if (doc.pcrs.get(0)!.every((b) => b === 0))
    throw new BkvError(
      ErrorCode.Measurement,
      `the Nitro document of ${doc.moduleId} is of a debug-mode enclave (PCR0 is zero)`,
    );
  const expected = nitroMemberUserData(a.signKey, a.agreeKey);
  if (doc.userData === null || !bytesEqual(doc.userData, expected))
    throw new BkvError(
      ErrorCode.AttestationKeys,
      `the Nitro document of ${doc.moduleId} does not name this member's keys (its user_data is ${
        doc.userData === null ? "absent" : `${doc.userData.length} other bytes`
      })`,
    );
  if (!bytesEqual(image, a.measurement))
    throw new BkvError(
      ErrorCode.Measurement,
      `the Nitro document's PCRs give image measurement ${toHex(image)}, not the member's ${toHex(a.measurement)}`,
    );
  return {
    document: doc,
    root: toHex(sha256(doc.chain[0]!.der)),
    time: new Date(doc.timestamp).toISOString(),
  };
}
